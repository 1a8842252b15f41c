"""A small local fake of the Kubernetes API server, for the official client to talk to.

No offline Kubernetes exists, so the tests aim ``kubernetes.client`` (through a real
kubeconfig file) at this HTTP server. It serves only the paths strangler uses, with bodies
shaped after real API objects (``kind``/``apiVersion``/``metadata``/``spec``/``status`` as
``kubectl get -o json`` shows them), and it behaves like the controllers where strangler
depends on it: patching a Deployment's template makes the matching ReplicaSet the newest
revision, and the rollout completes after a few status reads.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import pytest

REV = "deployment.kubernetes.io/revision"


def pod(name: str, app: str, *, phase: str = "Running", ready: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "",
            "labels": {"app": app},
            "uid": str(uuid.uuid4()),
        },
        "spec": {"containers": [{"name": app, "image": f"{app}:2"}]},
        "status": {
            "phase": phase,
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": "True" if ready else "False"},
                {"type": "ContainersReady", "status": "True" if ready else "False"},
            ],
        },
    }


def _template(app: str, image: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": app, "image": image}]},
    }


@dataclass
class FakeKube:
    """State of the fake cluster; tests edit it directly."""

    url: str = ""
    kubeconfig: Path = Path()
    pods: list[dict[str, Any]] = field(default_factory=list)
    deployments: dict[str, dict[str, Any]] = field(default_factory=dict)
    replicasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    hpas: list[dict[str, Any]] = field(default_factory=list)
    external_secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (service, port, path) -> (status, body)
    proxy: dict[tuple[str, int, str], tuple[int, str]] = field(default_factory=dict)
    # Objects created with POST (issue 17: the workers' ConfigMap and Indexed Job), by
    # (namespace, name); the API server's own validation of a Job is applied to them.
    configmaps: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    jobs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    rollout_reads: int = 2  # status reads before a patched rollout reports complete
    requests: list[str] = field(default_factory=list)
    _pending: dict[str, int] = field(default_factory=dict)

    def add_deployment(self, ns: str, name: str, app: str, images: list[str]) -> None:
        """A Deployment with one ReplicaSet per image; the last one is current."""
        uid = str(uuid.uuid4())
        for i, image in enumerate(images, start=1):
            rs_name = f"{name}-{uuid.uuid4().hex[:10]}"
            self.replicasets[rs_name] = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": ns,
                    "labels": {"app": app},
                    "annotations": {REV: str(i)},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": name,
                            "uid": uid,
                            "controller": True,
                        }
                    ],
                    "uid": str(uuid.uuid4()),
                },
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": app}},
                    "template": _template(app, image)
                    | {"metadata": {"labels": {"app": app, "pod-template-hash": rs_name[-10:]}}},
                },
                "status": {"replicas": 0},
            }
        self.deployments[name] = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "namespace": ns,
                "uid": uid,
                "generation": 1,
                "annotations": {REV: str(len(images))},
            },
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": app}},
                "template": _template(app, images[-1]),
            },
            "status": {
                "observedGeneration": 1,
                "replicas": 3,
                "updatedReplicas": 3,
                "readyReplicas": 3,
                "availableReplicas": 3,
            },
        }

    def image_of(self, name: str) -> str:
        return str(self.deployments[name]["spec"]["template"]["spec"]["containers"][0]["image"])

    # -------------------------------------------------------------------- request logic

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        self.requests.append(f"{method} {path}")
        parts = path.strip("/").split("/")
        selector = dict(
            kv.split("=", 1) for kv in (query.get("labelSelector", [""])[0].split(",")) if kv
        )

        def match(obj: dict[str, Any]) -> bool:
            labels = obj["metadata"].get("labels", {})
            return all(labels.get(k) == v for k, v in selector.items())

        if parts[:3] == ["api", "v1", "namespaces"] and parts[4:5] == ["configmaps"]:
            return self._configmap(method, parts[3], parts[5:], body)
        if parts[:4] == ["apis", "batch", "v1", "namespaces"] and parts[5:6] == ["jobs"]:
            return self._job(method, parts[4], parts[6:], body)
        if parts[:3] == ["api", "v1", "namespaces"] and parts[4:] == ["pods"]:
            return 200, {
                "apiVersion": "v1",
                "kind": "PodList",
                "metadata": {},
                "items": [p for p in self.pods if match(p)],
            }
        if (
            parts[:3] == ["api", "v1", "namespaces"]
            and parts[4] == "services"
            and len(parts) >= 7
            and parts[6] == "proxy"
        ):
            svc, _, port = parts[5].partition(":")
            sub = "/" + "/".join(parts[7:])
            if (svc, int(port or 80), sub) in self.proxy:
                return self.proxy[(svc, int(port or 80), sub)]
            return 503, _status(503, f'no endpoints available for service "{svc}"')
        if parts[:2] == ["apis", "apps"] and parts[5] == "deployments":
            dep = self.deployments.get(parts[6])
            if dep is None:
                return 404, _status(404, f'deployments.apps "{parts[6]}" not found')
            if method == "PATCH":
                return 200, self._patch(dep, body)
            if parts[7:] == ["status"]:
                return 200, self._status_read(dep)
            return 200, dep
        if parts[:2] == ["apis", "apps"] and parts[5] == "replicasets":
            if len(parts) == 7:
                rs = self.replicasets.get(parts[6])
                return (200, rs) if rs else (404, _status(404, "replicaset not found"))
            return 200, {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSetList",
                "metadata": {},
                "items": [r for r in self.replicasets.values() if match(r)],
            }
        if parts[:3] == ["apis", "autoscaling", "v2"]:
            return 200, {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscalerList",
                "metadata": {},
                "items": self.hpas,
            }
        if parts[:2] == ["apis", "external-secrets.io"]:
            es = self.external_secrets.get(parts[-1])
            if es is None or parts[2] != es["apiVersion"].split("/")[1]:
                return 404, _status(404, "externalsecret not found")
            return 200, es
        return 404, _status(404, f"the server could not find the requested resource {path}")

    def _configmap(self, method: str, ns: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "POST":
            name = body["metadata"]["name"]
            if (ns, name) in self.configmaps:
                return 409, _status(409, f'configmaps "{name}" already exists')
            self.configmaps[(ns, name)] = _created(body)
            return 201, self.configmaps[(ns, name)]
        if method == "PUT" and rest and (ns, rest[0]) in self.configmaps:
            self.configmaps[(ns, rest[0])] = _created(body)
            return 200, self.configmaps[(ns, rest[0])]
        if rest and (ns, rest[0]) in self.configmaps:
            return 200, self.configmaps[(ns, rest[0])]
        return 404, _status(404, "configmap not found")

    def _job(self, method: str, ns: str, rest: list[str], body: Any) -> tuple[int, Any]:
        if method == "POST":
            name = body["metadata"]["name"]
            problems = job_problems(body)
            if problems:
                return 422, _status(422, f'Job.batch "{name}" is invalid: ' + "; ".join(problems))
            if (ns, name) in self.jobs:
                return 409, _status(409, f'jobs.batch "{name}" already exists')
            self.jobs[(ns, name)] = _created(body) | {"status": {"active": 0}}
            return 201, self.jobs[(ns, name)]
        if rest and (ns, rest[0]) in self.jobs:
            return 200, self.jobs[(ns, rest[0])]
        return 404, _status(404, "job not found")

    def _patch(self, dep: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
        for op in ops:
            assert op["op"] == "replace" and op["path"] == "/spec/template", op
            dep["spec"]["template"] = op["value"]
        dep["metadata"]["generation"] += 1
        # The deployment controller: the ReplicaSet with this template becomes the newest.
        newest = max(int(r["metadata"]["annotations"][REV]) for r in self.replicasets.values())
        for rs in self.replicasets.values():
            tpl = copy.deepcopy(rs["spec"]["template"])
            tpl["metadata"]["labels"].pop("pod-template-hash", None)
            if tpl == dep["spec"]["template"]:
                rs["metadata"]["annotations"][REV] = str(newest + 1)
        dep["metadata"]["annotations"][REV] = str(newest + 1)
        dep["status"]["updatedReplicas"] = 0
        self._pending[dep["metadata"]["name"]] = self.rollout_reads
        return dep

    def _status_read(self, dep: dict[str, Any]) -> dict[str, Any]:
        name = dep["metadata"]["name"]
        left = self._pending.get(name, 0)
        if left > 0:
            self._pending[name] = left - 1
            dep["status"]["updatedReplicas"] = dep["spec"]["replicas"] - left
        else:
            dep["status"]["updatedReplicas"] = dep["spec"]["replicas"]
            dep["status"]["observedGeneration"] = dep["metadata"]["generation"]
        return dep


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def job_problems(job: dict[str, Any]) -> list[str]:
    """What the API server's validation of a batch/v1 Job refuses, in its own words
    (``kubectl apply`` of a broken Job prints these)."""
    out: list[str] = []
    meta, spec = job.get("metadata", {}), job.get("spec", {})
    name = meta.get("name", "")
    if not name or len(name) > 63 or not _DNS_LABEL.match(name):
        out.append(f'metadata.name: Invalid value: "{name}": a lowercase RFC 1123 label')
    mode = spec.get("completionMode", "NonIndexed")
    if mode not in ("Indexed", "NonIndexed"):
        out.append(f'spec.completionMode: Unsupported value: "{mode}"')
    if mode == "Indexed" and spec.get("completions") is None:
        out.append("spec.completions: Required value: when completion mode is Indexed")
    for key in ("completions", "parallelism", "backoffLimit"):
        if key in spec and (not isinstance(spec[key], int) or spec[key] < 0):
            out.append(f"spec.{key}: Invalid value: {spec[key]!r}: must be >= 0")
    pod = spec.get("template", {}).get("spec", {})
    policy = pod.get("restartPolicy")
    if policy not in ("OnFailure", "Never"):
        out.append(
            f'spec.template.spec.restartPolicy: Unsupported value: "{policy}": supported '
            'values: "OnFailure", "Never"'
        )
    containers = pod.get("containers") or []
    if not containers:
        out.append("spec.template.spec.containers: Required value")
    volumes = {v.get("name") for v in pod.get("volumes", [])}
    for i, c in enumerate(containers):
        where = f"spec.template.spec.containers[{i}]"
        if not _DNS_LABEL.match(c.get("name", "")):
            out.append(f"{where}.name: Invalid value")
        if not c.get("image"):
            out.append(f"{where}.image: Required value")
        for e in c.get("env", []):
            if not _ENV_NAME.match(e.get("name", "")):
                out.append(f'{where}.env.name: Invalid value: "{e.get("name")}"')
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None and not (ref.get("name") and ref.get("key")):
                out.append(f"{where}.env.valueFrom.secretKeyRef: Required value")
        for m in c.get("volumeMounts", []):
            if m.get("name") not in volumes:
                out.append(f'{where}.volumeMounts.name: Not found: "{m.get("name")}"')
    return out


def _created(body: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(body)
    obj["metadata"] |= {"uid": str(uuid.uuid4()), "creationTimestamp": "2026-01-01T00:00:00Z"}
    return obj


def _status(code: int, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": {404: "NotFound", 409: "AlreadyExists", 422: "Invalid"}.get(
            code, "ServiceUnavailable"
        ),
        "code": code,
    }


def external_secret(
    name: str, ready: str, message: str = "secret synced", version: str = "v1beta1"
) -> dict[str, Any]:
    return {
        "apiVersion": f"external-secrets.io/{version}",
        "kind": "ExternalSecret",
        "metadata": {"name": name, "namespace": ""},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"name": "aws", "kind": "ClusterSecretStore"},
            "target": {"name": name},
        },
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": ready,
                    "reason": "SecretSynced" if ready == "True" else "SecretSyncedError",
                    "message": message,
                    "lastTransitionTime": "2026-01-01T00:00:00Z",
                }
            ],
            "refreshTime": "2026-01-01T00:00:00Z",
        },
    }


def hpa(name: str, target: str, current: int, desired: int) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": ""},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 2,
            "maxReplicas": 10,
        },
        "status": {"currentReplicas": current, "desiredReplicas": desired},
    }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKube

    def log_message(self, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        # Like Go's net/http, the API server routes on the percent-decoded path.
        path = unquote(url.path)
        status, payload = self.fake.handle(self.command, path, parse_qs(url.query), body)
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        ctype = "text/plain" if isinstance(payload, str) else "application/json"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = do_POST = do_PUT = _serve


@pytest.fixture
def fake_kube(tmp_path: Path) -> Iterator[FakeKube]:
    """A running fake API server and a kubeconfig that points at it."""
    fake = FakeKube()
    handler = type("H", (_Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    fake.kubeconfig = tmp_path / "kubeconfig"
    fake.kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        f"clusters: [{{name: test, cluster: {{server: '{fake.url}'}}}}]\n"
        "users: [{name: test, user: {token: not-a-real-token}}]\n"
        "contexts: [{name: test, context: {cluster: test, user: test}}]\n"
    )
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
