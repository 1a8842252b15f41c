"""strangler.infra.k8s through the official client against the fake API server."""

from __future__ import annotations

from pathlib import Path

import pytest

from strangler.errors import BadInput, CheckFailed
from strangler.infra.k8s import Kube, KubeUnreachable
from tests.fix_k8s import FakeKube, external_secret, hpa, pod


@pytest.fixture
def kube(fake_kube: FakeKube) -> Kube:
    return Kube.connect(fake_kube.kubeconfig)


def test_pods_ready_and_selector(kube: Kube, fake_kube: FakeKube) -> None:
    fake_kube.pods += [pod("a-1", "a"), pod("a-2", "a", ready=False), pod("b-1", "b")]
    pods = kube.pods("ns", {"app": "a"})
    assert [(p.name, p.phase, p.ready) for p in pods] == [
        ("a-1", "Running", True),
        ("a-2", "Running", False),
    ]
    assert "GET /api/v1/namespaces/ns/pods" in fake_kube.requests


def test_external_secret_v1beta1_fallback_and_missing(kube: Kube, fake_kube: FakeKube) -> None:
    fake_kube.external_secrets["s"] = external_secret("s", "False", "AccessDenied")
    assert kube.external_secret_ready("ns", "s") == ("False", "AccessDenied")
    with pytest.raises(CheckFailed, match="ExternalSecret ns/missing does not exist"):
        kube.external_secret_ready("ns", "missing")


def test_hpa_and_proxy(kube: Kube, fake_kube: FakeKube) -> None:
    fake_kube.hpas.append(hpa("a", "a", 3, 4))
    assert kube.hpas("ns")[0].desired == 4
    fake_kube.proxy[("a", 80, "/health/ready")] = (200, "ok")
    assert kube.service_get("ns", "a", 80, "/health/ready") == (200, "ok")
    assert kube.service_get("ns", "b", 80, "/health/ready")[0] == 503


def test_rollout_undo_previous_and_to_revision(kube: Kube, fake_kube: FakeKube) -> None:
    fake_kube.add_deployment("ns", "web", "web", ["web:1", "web:2", "web:3"])
    plan = kube.rollout_undo("ns", "web")
    assert (plan["from_revision"], plan["to_revision"], plan["image"]) == (3, 2, "web:2")
    assert fake_kube.image_of("web") == "web:2"
    waited: list[float] = []
    seen = kube.wait_rollout("ns", "web", sleep=waited.append)
    assert seen["updated"] == 3 and len(waited) == 2
    kube.rollout_undo("ns", "web", to_revision=1)
    assert fake_kube.image_of("web") == "web:1"
    with pytest.raises(BadInput, match="has no revision 9; revisions: "):
        kube.rollout_undo("ns", "web", to_revision=9)


def test_rollout_wait_times_out(kube: Kube, fake_kube: FakeKube) -> None:
    fake_kube.add_deployment("ns", "web", "web", ["web:1", "web:2"])
    fake_kube.rollout_reads = 10_000
    kube.rollout_undo("ns", "web")
    with pytest.raises(CheckFailed, match="did not finish rolling out in 0s"):
        kube.wait_rollout("ns", "web", timeout=0, sleep=lambda _s: None)


def test_no_previous_revision(kube: Kube, fake_kube: FakeKube) -> None:
    fake_kube.add_deployment("ns", "web", "web", ["web:1"])
    with pytest.raises(CheckFailed, match="has no revision before 1"):
        kube.rollout_undo("ns", "web")


def test_unreachable_api_server(tmp_path: Path, fake_kube: FakeKube) -> None:
    cfg = tmp_path / "dead"
    cfg.write_text(fake_kube.kubeconfig.read_text().replace(fake_kube.url, "http://127.0.0.1:9"))
    with pytest.raises(KubeUnreachable, match="cannot be reached"):
        Kube.connect(cfg, timeout=2).pods("ns", {"app": "a"})


def test_bad_kubeconfig(tmp_path: Path) -> None:
    bad = tmp_path / "kc"
    bad.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(BadInput, match="no usable Kubernetes configuration"):
        Kube.connect(bad)
