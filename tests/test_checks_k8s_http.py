"""Kubernetes and HTTP checks: each verdict and each way they fail, message asserted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from strangler.checks.base import CheckContext, Verdict, run_checks
from strangler.checks.http import http_health
from strangler.checks.kubernetes import (
    external_secret_synced,
    hpa_status,
    pods_ready,
    service_health,
)
from tests.checks_helpers import make_ctx, spec_text
from tests.fix_k8s import FakeKube, external_secret, hpa, pod


@pytest.fixture
def ctx(tmp_path: Path, fake_kube: FakeKube) -> CheckContext:
    extra = (
        "preflight:\n"
        "  kubernetes:\n"
        "    namespace: orders\n"
        f"    kubeconfig: {fake_kube.kubeconfig}\n"
        "    service: order-service\n"
    )
    return make_ctx(tmp_path, spec_text("postgresql://x/db", extra))


def test_skipped_without_kubernetes_section(tmp_path: Path) -> None:
    c = make_ctx(tmp_path, spec_text("postgresql://x/db"))
    for check in (pods_ready, service_health, external_secret_synced, hpa_status):
        r = check(c)
        assert r.verdict is Verdict.SKIPPED
        assert r.message == "no preflight.kubernetes section in the spec"


def test_pods(ctx: CheckContext, fake_kube: FakeKube) -> None:
    r = pods_ready(ctx)
    assert (r.verdict, r.message) == (Verdict.FAIL, "no pods in orders match app=order_service")
    fake_kube.pods += [pod("os-1", "order_service"), pod("os-2", "order_service")]
    r = pods_ready(ctx)
    assert (r.verdict, r.message) == (Verdict.PASS, "2/2 pods ready")
    fake_kube.pods.append(pod("os-3", "order_service", phase="Pending", ready=False))
    r = pods_ready(ctx)
    assert r.verdict is Verdict.FAIL
    assert r.message == "only 2/3 pods ready: os-3 (Pending, ready=False)"
    assert [p["name"] for p in r.evidence["pods"]] == ["os-1", "os-2", "os-3"]


def test_health_through_service_proxy(ctx: CheckContext, fake_kube: FakeKube) -> None:
    r = service_health(ctx)
    assert (r.verdict, r.message) == (
        Verdict.FAIL,
        "orders/order-service:80/health/ready returned 503",
    )
    fake_kube.proxy[("order-service", 80, "/health/ready")] = (200, '{"status":"ok"}')
    r = service_health(ctx)
    assert (r.verdict, r.message) == (
        Verdict.PASS,
        "orders/order-service:80/health/ready returned 200",
    )
    assert any("/services/order-service:80/proxy/health/ready" in q for q in fake_kube.requests)


def test_external_secret(ctx: CheckContext, fake_kube: FakeKube) -> None:
    [r] = run_checks(ctx, [("external secrets synced", external_secret_synced)])
    assert r.verdict is Verdict.FAIL
    assert r.message == "ExternalSecret orders/order_service-secrets does not exist"
    fake_kube.external_secrets["order_service-secrets"] = external_secret(
        "order_service-secrets", "False", "could not get secret data from provider"
    )
    r = external_secret_synced(ctx)
    assert r.verdict is Verdict.FAIL
    assert r.message == (
        "ExternalSecret orders/order_service-secrets not synced "
        "(Ready=False: could not get secret data from provider)"
    )
    fake_kube.external_secrets["order_service-secrets"] = external_secret(
        "order_service-secrets", "True", version="v1"
    )
    r = external_secret_synced(ctx)
    assert (r.verdict, r.message) == (
        Verdict.PASS,
        "ExternalSecret orders/order_service-secrets synced",
    )


def test_hpa_is_information(ctx: CheckContext, fake_kube: FakeKube) -> None:
    r = hpa_status(ctx)
    assert (r.verdict, r.required) == (Verdict.WARN, False)
    assert r.message == "no HorizontalPodAutoscaler in orders"
    fake_kube.hpas.append(hpa("order-service", "order-service", 3, 5))
    r = hpa_status(ctx)
    assert r.verdict is Verdict.PASS
    assert r.message == ("order-service → Deployment/order-service: 3/5 replicas (min 2, max 10)")


def test_api_server_down_is_a_fail_with_reason(tmp_path: Path) -> None:
    cfg = tmp_path / "kc"
    cfg.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
        "clusters: [{name: t, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: t, user: {token: x}}]\n"
        "contexts: [{name: t, context: {cluster: t, user: t}}]\n"
    )
    extra = f"preflight:\n  kubernetes:\n    namespace: orders\n    kubeconfig: {cfg}\n"
    c = make_ctx(tmp_path, spec_text("postgresql://x/db", extra))
    [r] = run_checks(c, [("pods", pods_ready)])
    assert r.verdict is Verdict.FAIL
    assert "the Kubernetes API server cannot be reached" in r.message
    assert r.evidence["error"] == "KubeUnreachable"


class _Health(BaseHTTPRequestHandler):
    status = 200

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"ready" if self.status == 200 else b"db down")


@pytest.fixture
def health_server() -> Iterator[tuple[str, type[_Health]]]:
    handler = type("H", (_Health,), {"status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/health/ready", handler
    finally:
        server.shutdown()
        server.server_close()


def test_http_health(tmp_path: Path, health_server: tuple[str, type[_Health]]) -> None:
    url, handler = health_server
    c = make_ctx(tmp_path, spec_text("postgresql://x/db", f"preflight:\n  health_url: {url}\n"))
    r = http_health(c)
    assert (r.verdict, r.message) == (Verdict.PASS, f"{url} returned 200")
    handler.status = 500
    r = http_health(c)
    assert (r.verdict, r.message) == (Verdict.FAIL, f"{url} returned 500")
    assert r.evidence["body"] == "db down"


def test_http_health_unreachable_and_skipped(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/health"
    c = make_ctx(tmp_path, spec_text("postgresql://x/db", f"preflight:\n  health_url: {url}\n"))
    r = http_health(c)
    assert r.verdict is Verdict.FAIL
    assert r.message.startswith(f"{url} cannot be reached:")
    (tmp_path / "other").mkdir()
    c2 = make_ctx(tmp_path / "other", spec_text("postgresql://x/db"))
    assert http_health(c2).message == "no preflight.health_url in the spec"
