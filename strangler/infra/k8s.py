"""Kubernetes through its official Python client: the reads of validate-service.sh and the
write of ``kubectl rollout undo``.

One :class:`Kube` per command, built from a kubeconfig (the spec's, else ``$KUBECONFIG``/
``~/.kube/config``) or the in-cluster service account. Every API error is converted here:
an unreachable API server becomes :class:`KubeUnreachable` (exit 3), a missing object a
:class:`~strangler.errors.CheckFailed` naming it, so checks only ever see strangler errors.

Usage::

    kube = Kube.connect(spec.preflight.kubernetes, base_dir=spec.base_dir)
    pods = kube.pods("order-service", {"app": "order_service"})
    status, body = kube.service_get("order-service", "order-service", 80, "/health/ready")
    kube.rollout_undo("order-service", "order-service", to_revision=None)
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strangler.errors import BadInput, CheckFailed, KubeUnreachable
from strangler.secrets import scrub

__all__ = ["Hpa", "Kube", "KubeUnreachable", "Pod", "Revision"]

_REVISION = "deployment.kubernetes.io/revision"
_ES_GROUP = "external-secrets.io"


@dataclass(frozen=True)
class Pod:
    name: str
    phase: str
    ready: bool


@dataclass(frozen=True)
class Hpa:
    name: str
    target: str
    min_replicas: int | None
    max_replicas: int
    current: int | None
    desired: int | None


@dataclass(frozen=True)
class Revision:
    number: int
    replicaset: str
    image: str


@contextlib.contextmanager
def _mapped(what: str) -> Iterator[None]:
    """Convert the client's exceptions into strangler errors that name ``what``."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as exc:
        if exc.status == 404:
            raise CheckFailed(f"{what}: not found (HTTP 404)") from exc
        if exc.status in (401, 403):
            raise KubeUnreachable(
                f"{what}: the API server refused our credentials (HTTP {exc.status})",
                hint="check the kubeconfig context and its RBAC permissions",
            ) from exc
        raise KubeUnreachable(f"{what}: HTTP {exc.status} {scrub(str(exc.reason))}") from exc
    except HTTPError as exc:
        raise KubeUnreachable(
            f"{what}: the Kubernetes API server cannot be reached ({type(exc).__name__})",
            hint="check the kubeconfig's server address, or 'kubectl cluster-info'",
        ) from exc


def _selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


class Kube:
    """The API calls strangler makes; ``api`` is a ``kubernetes.client.ApiClient``."""

    def __init__(self, api: Any, *, timeout: float = 10.0) -> None:
        from kubernetes import client

        self.api = api
        self.timeout = timeout
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.autoscaling = client.AutoscalingV2Api(api)
        self.custom = client.CustomObjectsApi(api)

    @classmethod
    def connect(
        cls, kubeconfig: Path | None = None, context: str | None = None, *, timeout: float = 10.0
    ) -> Kube:
        """From ``kubeconfig`` (else ``$KUBECONFIG``, ``~/.kube/config``), else in-cluster."""
        from kubernetes import client, config
        from kubernetes.config.config_exception import ConfigException

        cfg = client.Configuration()
        path = kubeconfig or (
            Path(os.environ["KUBECONFIG"])
            if os.environ.get("KUBECONFIG")
            else Path.home() / ".kube" / "config"
        )
        try:
            if path.is_file():
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    str(path), context=context, client_configuration=cfg
                )
            else:
                config.load_incluster_config(  # type: ignore[no-untyped-call]
                    client_configuration=cfg
                )
        except ConfigException as exc:
            raise BadInput(
                f"no usable Kubernetes configuration ({path} missing or invalid: {exc})",
                hint="set preflight.kubernetes.kubeconfig in the spec, or export KUBECONFIG",
            ) from exc
        cfg.retries = 1
        return cls(client.ApiClient(cfg), timeout=timeout)

    def close(self) -> None:
        self.api.close()

    # ----------------------------------------------------------------------------- reads

    def pods(self, namespace: str, labels: Mapping[str, str]) -> list[Pod]:
        with _mapped(f"pods in {namespace} with {_selector(labels)}"):
            found: Any = self.core.list_namespaced_pod(
                namespace, label_selector=_selector(labels), _request_timeout=self.timeout
            )
        out = []
        for p in found.items:
            conditions = p.status.conditions or [] if p.status else []
            ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
            out.append(Pod(p.metadata.name, (p.status.phase if p.status else None) or "?", ready))
        return out

    def external_secret_ready(self, namespace: str, name: str) -> tuple[str, str]:
        """``(status, message)`` of the ExternalSecret's Ready condition ("True" when synced)."""
        obj: Any = None
        for version in ("v1", "v1beta1"):
            with contextlib.suppress(CheckFailed), _mapped(f"ExternalSecret {namespace}/{name}"):
                obj = self.custom.get_namespaced_custom_object(
                    _ES_GROUP,
                    version,
                    namespace,
                    "externalsecrets",
                    name,
                    _request_timeout=self.timeout,
                )
                break
        if obj is None:
            raise CheckFailed(f"ExternalSecret {namespace}/{name} does not exist")
        for cond in (obj.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "Ready":
                return str(cond.get("status")), str(cond.get("message") or cond.get("reason", ""))
        return "Unknown", "no Ready condition yet"

    def hpas(self, namespace: str) -> list[Hpa]:
        with _mapped(f"HorizontalPodAutoscalers in {namespace}"):
            found: Any = self.autoscaling.list_namespaced_horizontal_pod_autoscaler(
                namespace, _request_timeout=self.timeout
            )
        return [
            Hpa(
                h.metadata.name,
                f"{h.spec.scale_target_ref.kind}/{h.spec.scale_target_ref.name}",
                h.spec.min_replicas,
                h.spec.max_replicas,
                h.status.current_replicas if h.status else None,
                h.status.desired_replicas if h.status else None,
            )
            for h in found.items
        ]

    def service_get(self, namespace: str, service: str, port: int, path: str) -> tuple[int, str]:
        """GET ``path`` on a Service through the API server's service proxy (no port-forward)."""
        from kubernetes.client.exceptions import ApiException

        what = f"service {namespace}/{service}:{port}{path}"
        try:
            with _mapped(what):
                resp: Any = self.core.connect_get_namespaced_service_proxy_with_path(
                    f"{service}:{port}",
                    namespace,
                    path.lstrip("/"),
                    _preload_content=False,
                    _request_timeout=self.timeout,
                )
        except CheckFailed as exc:
            cause = exc.__cause__
            if isinstance(cause, ApiException):
                return 404, str(cause.body or "")[:200]
            raise
        except KubeUnreachable as exc:
            cause = exc.__cause__
            if isinstance(cause, ApiException) and cause.status and cause.status >= 500:
                return int(cause.status), str(cause.body or "")[:200]
            raise
        body = resp.data.decode("utf-8", "replace") if hasattr(resp, "data") else str(resp)
        return int(resp.status), body[:200]

    # ------------------------------------------------------------------------ rollbacks

    def revisions(self, namespace: str, deployment: str) -> tuple[Any, list[Revision]]:
        """The Deployment and its ReplicaSets' revisions, oldest first."""
        with _mapped(f"Deployment {namespace}/{deployment}"):
            dep: Any = self.apps.read_namespaced_deployment(
                deployment, namespace, _request_timeout=self.timeout
            )
        labels = dep.spec.selector.match_labels or {}
        with _mapped(f"ReplicaSets of {namespace}/{deployment}"):
            sets: Any = self.apps.list_namespaced_replica_set(
                namespace, label_selector=_selector(labels), _request_timeout=self.timeout
            )
        revs = []
        for rs in sets.items:
            owners = rs.metadata.owner_references or []
            if not any(o.uid == dep.metadata.uid for o in owners):
                continue
            number = int((rs.metadata.annotations or {}).get(_REVISION, "0"))
            image = ",".join(c.image for c in rs.spec.template.spec.containers)
            revs.append(Revision(number, rs.metadata.name, image))
        return dep, sorted(revs, key=lambda r: r.number)

    def rollout_undo(
        self,
        namespace: str,
        deployment: str,
        to_revision: int | None = None,
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """``kubectl rollout undo``: the Deployment's pod template back to a ReplicaSet's.

        Without ``to_revision``, the newest revision older than the current one."""
        dep, revs = self.revisions(namespace, deployment)
        current = int((dep.metadata.annotations or {}).get(_REVISION, "0"))
        if to_revision is None:
            older = [r for r in revs if r.number < current]
            if not older:
                raise CheckFailed(
                    f"Deployment {namespace}/{deployment} has no revision before {current}",
                    hint="nothing to roll back to; see 'kubectl rollout history'",
                )
            chosen = older[-1]
        else:
            match = [r for r in revs if r.number == to_revision]
            if not match:
                known = ", ".join(str(r.number) for r in revs) or "none"
                raise BadInput(
                    f"Deployment {namespace}/{deployment} has no revision {to_revision}; "
                    f"revisions: {known}"
                )
            chosen = match[0]
        if chosen.number == current:
            raise BadInput(f"revision {current} is already the current one")
        plan = {
            "deployment": f"{namespace}/{deployment}",
            "from_revision": current,
            "to_revision": chosen.number,
            "replicaset": chosen.replicaset,
            "image": chosen.image,
        }
        if dry_run:
            return plan
        with _mapped(f"ReplicaSet {namespace}/{chosen.replicaset}"):
            rs: Any = self.apps.read_namespaced_replica_set(
                chosen.replicaset, namespace, _request_timeout=self.timeout
            )
        template = self.api.sanitize_for_serialization(rs.spec.template)
        # The ReplicaSet's own hash label would make the Deployment adopt nothing new.
        template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
        with _mapped(f"Deployment {namespace}/{deployment}"):
            self.apps.patch_namespaced_deployment(
                deployment,
                namespace,
                [{"op": "replace", "path": "/spec/template", "value": template}],
                _request_timeout=self.timeout,
            )
        return plan

    def wait_rollout(
        self,
        namespace: str,
        deployment: str,
        *,
        timeout: float = 300.0,
        interval: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, int]:
        """``kubectl rollout status``: until every replica runs the new template."""
        deadline = time.monotonic() + timeout
        while True:
            with _mapped(f"Deployment {namespace}/{deployment}"):
                dep: Any = self.apps.read_namespaced_deployment_status(
                    deployment, namespace, _request_timeout=self.timeout
                )
            st, want = dep.status, dep.spec.replicas or 0
            seen = {
                "replicas": want,
                "updated": st.updated_replicas or 0,
                "available": st.available_replicas or 0,
                "generation": dep.metadata.generation or 0,
                "observed": st.observed_generation or 0,
            }
            if (
                seen["observed"] >= seen["generation"]
                and seen["updated"] == want
                and seen["available"] == want
                and (st.replicas or 0) == want
            ):
                return seen
            if time.monotonic() > deadline:
                raise CheckFailed(
                    f"Deployment {namespace}/{deployment} did not finish rolling out in "
                    f"{timeout:.0f}s ({seen['updated']}/{want} updated, "
                    f"{seen['available']}/{want} available)",
                    hint=f"kubectl rollout status deployment/{deployment} -n {namespace}",
                )
            sleep(interval)
