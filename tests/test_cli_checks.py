"""The preflight, attest, validate, alarms, rollback (k8s, terraform) and decommission
commands, run as an operator runs them (a subprocess)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from strangler.journal import Journal
from tests.checks_helpers import spec_text
from tests.fix_k8s import FakeKube, external_secret, hpa, pod

DSN = "postgresql://x/db"


def _git_repo(path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "README").write_text("infra\n")
    subprocess.run(["git", "-C", str(path), "add", "-A"], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(path),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "init",
        ],
        check=True,
    )
    return path


def _last_commit(path: Path) -> str:
    return subprocess.run(
        ["git", "-C", str(path), "log", "-1", "--format=%s"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_preflight_exit_codes_json_and_attest(
    tmp_path: Path, write_spec: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    extra = "preflight:\n  attestations: [oncall]\n  rehearsal_spec: dev.yaml\n"
    spec = write_spec(spec_text(DSN, extra))
    r = cli("preflight", "order_service", "-f", str(spec), "-o", "json")
    assert r.code == 1, r.stderr
    doc = r.json()
    verdicts = {x["name"]: x["verdict"] for x in doc["results"]}
    assert verdicts["attested: oncall"] == "fail"
    assert verdicts["terraform applied"] == "skipped"
    assert doc["passed"] is False

    (tmp_path / "dev.yaml").write_text(spec_text(DSN).replace("state.db", "dev.db"))
    with Journal(f"sqlite:///{tmp_path / 'dev.db'}") as dev:
        dev.outcome(dev.intent("order_service", "rollback_traffic"), "ok")
    r = cli(
        "attest",
        "order_service",
        "oncall",
        "--note",
        "paged #sre",
        "-f",
        str(spec),
        "--operator",
        "alice",
    )
    assert r.code == 0 and "oncall attested by alice" in r.stdout
    r = cli("preflight", "order_service", "-f", str(spec))
    assert r.code == 0, r.stdout + r.stderr
    assert "preflight passed" in r.stdout
    assert "alice at" in r.stdout
    r = cli("attest", "order_service", "oncall", "-f", str(spec))
    assert r.code == 2 and "needs --note" in r.stderr


def _k8s_spec(fake: FakeKube, extra: str = "") -> str:
    return spec_text(
        DSN,
        (
            "preflight:\n  kubernetes:\n    namespace: orders\n"
            f"    kubeconfig: {fake.kubeconfig}\n    deployment: order-service\n"
            "    service: order-service\n" + extra
        ),
    )


def test_validate(
    write_spec: Callable[..., Path], cli: Callable[..., Any], fake_kube: FakeKube
) -> None:
    spec = write_spec(_k8s_spec(fake_kube))
    fake_kube.pods += [pod("os-1", "order_service"), pod("os-2", "order_service")]
    fake_kube.proxy[("order-service", 80, "/health/ready")] = (200, "ok")
    fake_kube.external_secrets["order_service-secrets"] = external_secret(
        "order_service-secrets", "True"
    )
    fake_kube.hpas.append(hpa("order-service", "order-service", 2, 2))
    r = cli("validate", "order_service", "-f", str(spec))
    assert r.code == 0, r.stdout + r.stderr
    assert "2/2 pods ready" in r.stdout and "validate passed" in r.stdout
    fake_kube.pods.append(pod("os-3", "order_service", ready=False))
    r = cli("validate", "order_service", "-f", str(spec), "-o", "json")
    assert r.code == 1
    assert r.json()["results"][0]["message"] == "only 2/3 pods ready: os-3 (Running, ready=False)"


def test_validate_needs_kubernetes_section(
    write_spec: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    r = cli("validate", "order_service", "-f", str(write_spec(spec_text(DSN))))
    assert r.code == 2
    assert "validate needs services.order_service.preflight.kubernetes" in r.stderr


def test_alarms_terraform_parses_and_prometheus_rules(
    tmp_path: Path, write_spec: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    spec = write_spec(spec_text(DSN))
    r = cli("alarms", "order_service", "-f", str(spec), "--format", "terraform")
    assert r.code == 0
    assert 'metric_name = "HTTPCode_Target_5XX_Count"' in r.stdout
    assert 'alarm_name          = "strangler-order_service-error-rate"' in r.stdout
    # Missing data is never healthy (issue 14): the lag alarm breaches, the others notify.
    assert "notBreaching" not in r.stdout
    assert r.stdout.count('treat_missing_data = "breaching"') == 1
    assert r.stdout.count("insufficient_data_actions") == 2
    tf = tmp_path / "alarms" / "main.tf"
    tf.parent.mkdir()
    tf.write_text(r.stdout)
    from strangler.infra.terraform import locate_terraform

    runner = locate_terraform()
    done = runner.run(["fmt", "-check", "-diff", str(tf)], tmp_path, 60)
    assert done.returncode == 0, done.stdout + done.stderr  # valid, canonically formatted HCL
    r = cli("alarms", "order_service", "-f", str(spec), "--format", "prometheus")
    doc = yaml.safe_load(r.stdout)
    alerts = [rule["alert"] for rule in doc["groups"][0]["rules"]]
    assert alerts == ["OrderServiceHigh5xx", "OrderServiceLatencyP99", "OrderServiceSyncLag"]
    assert 'strangler_sync_lag_seconds{service="order_service"} > 60' in r.stdout


def test_rollback_k8s_commits_in_infra_repo(
    tmp_path: Path, write_spec: Callable[..., Path], cli: Callable[..., Any], fake_kube: FakeKube
) -> None:
    infra = _git_repo(tmp_path / "infra")
    spec = write_spec(_k8s_spec(fake_kube) + f"    infra:\n      repo: {infra}\n")
    fake_kube.add_deployment(
        "orders", "order-service", "order_service", ["order-service:1", "order-service:2"]
    )
    r = cli(
        "rollback",
        "order_service",
        "--k8s",
        "--reason",
        "bad image",
        "-f",
        str(spec),
        "--dry-run",
        "-o",
        "json",
    )
    assert r.code == 0 and r.json()["to_revision"] == 1
    assert fake_kube.image_of("order-service") == "order-service:2"
    r = cli("rollback", "order_service", "--k8s", "--reason", "bad image", "-f", str(spec))
    assert r.code == 0, r.stderr
    assert fake_kube.image_of("order-service") == "order-service:1"
    assert _last_commit(infra) == (
        "revert(k8s): roll back order_service to previous version — bad image"
    )
    with Journal(f"sqlite:///{tmp_path / 'state.db'}") as j:
        last = j.last("order_service", "rollback_k8s", status="ok")
    assert last is not None and last.details["to_revision"] == 1


TF = (
    'resource "terraform_data" "canary" { input = "c" }\n'
    'resource "terraform_data" "keep" { input = "k" }\n'
)


def test_rollback_terraform_needs_confirmation(
    tmp_path: Path, write_spec: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    infra = _git_repo(tmp_path / "infra")
    (infra / "env").mkdir()
    (infra / "env" / "main.tf").write_text(TF)
    from strangler.infra.terraform import Terraform

    tf = Terraform(infra / "env")
    tf.init()
    tf.apply()
    spec = write_spec(spec_text(DSN, f"infra:\n  repo: {infra}\n  terraform_dir: env\n"))
    args = (
        "rollback",
        "order_service",
        "--terraform",
        "terraform_data.canary",
        "--reason",
        "created by mistake",
        "-f",
        str(spec),
    )
    r = cli(*args)
    assert r.code == 2 and "not confirmed: terraform_data.canary was left in place" in r.stderr
    assert "terraform_data.canary" in tf.state_list()
    r = cli(*args, "--yes")
    assert r.code == 0, r.stderr
    assert tf.state_list() == ["terraform_data.keep"]
    assert _last_commit(infra) == (
        "revert(terraform): remove terraform_data.canary — created by mistake"
    )
    r = cli(*args, "--yes")
    assert r.code == 2 and "is not in the Terraform state" in r.stderr


def test_decommission_refuses_before_traffic(
    write_spec: Callable[..., Path], cli: Callable[..., Any]
) -> None:
    spec = write_spec(spec_text(DSN))
    r = cli("decommission", "order_service", "-f", str(spec), "--yes")
    assert r.code == 1
    assert "cannot declare the service stable: order_service is 'planned'" in r.stderr
