"""``strangler k8s SERVICE``: the workers' Indexed Job, checked against the official
Kubernetes client's models and applied to the fake API server (issue 17)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from strangler.errors import CheckFailed
from strangler.infra.k8s_job import spec_variables, validate, worker_job
from tests.fix_k8s import FakeKube, job_problems

SPEC = """\
version: 1
state: sqlite:///state.db
source:
  dsn: ${MONOLITH_DSN}
services:
  order_service:
    tables: [orders]
    target:
      dsn: ${ORDER_SERVICE_DSN}
      schema: order_service
      role: { name: order_app, password: "${ORDER_SERVICE_DB_PASSWORD}" }
    copy:
      engine: workers
      workers:
        image: registry.example/strangler:1.0
        namespace: migrations
        parallelism: 3
        kubeconfig: {kubeconfig}
    throttle: { max_replica_lag: "${MAX_LAG:-30s}" }
"""

ENV = {
    "MONOLITH_DSN": "postgresql://app:monolith-secret@db/monolith",
    "ORDER_SERVICE_DSN": "postgresql://svc:service-secret@db2/orders",
    "ORDER_SERVICE_DB_PASSWORD": "role-secret",
}


@pytest.fixture
def spec_file(tmp_path: Path, fake_kube: FakeKube) -> Path:
    path = tmp_path / "strangler.yaml"
    path.write_text(SPEC.replace("{kubeconfig}", str(fake_kube.kubeconfig)))
    return path


def test_the_manifest_is_an_indexed_job_with_secrets_by_reference(
    cli: Any, spec_file: Path
) -> None:
    done = cli("k8s", "order_service", "--parallelism", "6", "-f", str(spec_file), "-o", "json",
               env=ENV)  # fmt: skip
    assert done.code == 0, done.stderr
    data = done.json()
    config, job = data["objects"]
    assert config["kind"] == "ConfigMap" and job["kind"] == "Job"
    # the spec travels as written, ${VARS} unexpanded; no secret value anywhere
    assert config["data"]["strangler.yaml"] == spec_file.read_text()
    for secret in ("monolith-secret", "service-secret", "role-secret"):
        assert secret not in done.stdout
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 6
    assert spec["backoffLimit"] == 6
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/strangler:1.0"
    assert container["args"][:2] == ["worker", "order_service"]
    refs = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in container["env"]}
    assert refs["MONOLITH_DSN"] == {"name": "order-service-strangler", "key": "MONOLITH_DSN"}
    assert refs["ORDER_SERVICE_DB_PASSWORD"]["key"] == "ORDER_SERVICE_DB_PASSWORD"
    assert refs["MAX_LAG"]["optional"] is True  # ${MAX_LAG:-30s} has a default
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "512Mi"}
    assert job_problems(job) == []  # what the API server itself would check
    assert any("sqlite" in w for w in data["warnings"])
    # text output is the YAML an operator pipes to kubectl apply -f -
    text = cli("k8s", "order_service", "-f", str(spec_file), env=ENV)
    docs = list(yaml.safe_load_all(text.stdout))
    assert [d["kind"] for d in docs] == ["ConfigMap", "Job"]
    assert docs[1]["spec"]["parallelism"] == 3


def test_apply_creates_both_objects_on_the_api_server(
    cli: Any, spec_file: Path, fake_kube: FakeKube
) -> None:
    done = cli("k8s", "order_service", "--apply", "-f", str(spec_file), env=ENV)
    assert done.code == 0, done.stderr
    assert "created Job migrations/order-service-strangler-worker (3 pods)" in done.stdout
    job = fake_kube.jobs[("migrations", "order-service-strangler-worker")]
    assert job["spec"]["completionMode"] == "Indexed"
    assert ("migrations", "order-service-strangler-spec") in fake_kube.configmaps
    assert "POST /apis/batch/v1/namespaces/migrations/jobs" in fake_kube.requests
    again = cli("k8s", "order_service", "--apply", "-f", str(spec_file), env=ENV)
    assert again.code == 1
    assert "already exists" in again.stderr and "kubectl delete job" in again.stderr
    assert "PUT /api/v1/namespaces/migrations/configmaps/order-service-strangler-spec" in (
        fake_kube.requests
    )
    history = cli("history", "order_service", "-f", str(spec_file), "-o", "json", env=ENV)
    assert any(e["step"] == "workers_job" for e in history.json()["entries"])


def _job() -> dict[str, Any]:
    return worker_job(
        "order_service", "version: 1\n", image="i:1", namespace="ns", parallelism=2,
        backoff_limit=1, secret=None, requests={"cpu": "1"}, limits={},
    ).job  # fmt: skip


def test_the_models_refuse_unknown_and_missing_fields() -> None:
    good = _job()
    validate(good)
    typo = copy.deepcopy(good)
    typo["spec"]["completionMod"] = typo["spec"].pop("completionMode")
    with pytest.raises(CheckFailed, match=r"does not know: Job\.spec\.completionMod"):
        validate(typo)
    nameless = copy.deepcopy(good)
    del nameless["spec"]["template"]["spec"]["containers"][0]["name"]
    with pytest.raises(CheckFailed, match="does not match the Kubernetes API schema"):
        validate(nameless)


def test_the_fake_api_server_refuses_what_the_real_one_does() -> None:
    job = _job()
    del job["spec"]["completions"]
    job["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    problems = job_problems(job)
    assert "spec.completions: Required value: when completion mode is Indexed" in problems
    assert any("restartPolicy: Unsupported value" in p for p in problems)


def test_spec_variables() -> None:
    assert spec_variables("a: ${A}\nb: ${B:-x}\nc: $${NOT}\nd: ${A}") == {"A": False, "B": True}


def test_no_workers_section_is_bad_input(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "version: 1\nsource: {dsn: x}\nservices:\n  a:\n    tables: [t]\n"
        "    target: {schema: a, dsn: y}\n"
    )
    done = cli("k8s", "a", "-f", str(path))
    assert done.code == 2
    assert "copy.workers is not set" in done.stderr
