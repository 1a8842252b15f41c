"""Pre-flight and validate-service.sh items that ask Kubernetes: pods Running and Ready, the
service's ``/health/ready`` through the API server's service proxy, the ExternalSecret's Ready
condition, and the HPA (shown, never judged)."""

from __future__ import annotations

from strangler.checks.base import CheckContext, CheckResult, Verdict
from strangler.infra.k8s import Kube
from strangler.spec import KubernetesSpec

__all__ = [
    "external_secret_synced",
    "hpa_status",
    "kube_settings",
    "pods_ready",
    "service_health",
]


def kube_settings(ctx: CheckContext) -> KubernetesSpec | None:
    pre = ctx.svc.preflight
    return pre.kubernetes if pre else None


def _kube(ctx: CheckContext, k: KubernetesSpec) -> Kube:
    # One client per run: each check would otherwise re-read the kubeconfig.
    if "kube" not in ctx.cache:
        path = ctx.spec.resolve(k.kubeconfig) if k.kubeconfig else None
        ctx.cache["kube"] = Kube.connect(path, k.context)
    kube: Kube = ctx.cache["kube"]
    return kube


def _skip(name: str) -> CheckResult:
    return CheckResult(name, Verdict.SKIPPED, "no preflight.kubernetes section in the spec")


def _labels(ctx: CheckContext, k: KubernetesSpec) -> dict[str, str]:
    return dict(k.labels) or {"app": ctx.service}


def pods_ready(ctx: CheckContext) -> CheckResult:
    name = "pods running and ready"
    k = kube_settings(ctx)
    if k is None:
        return _skip(name)
    labels = _labels(ctx, k)
    pods = _kube(ctx, k).pods(k.namespace, labels)
    ready = [p for p in pods if p.ready and p.phase == "Running"]
    evidence = {
        "namespace": k.namespace,
        "selector": labels,
        "pods": [{"name": p.name, "phase": p.phase, "ready": p.ready} for p in pods],
    }
    sel = ",".join(f"{a}={b}" for a, b in sorted(labels.items()))
    if not pods:
        return CheckResult(name, Verdict.FAIL, f"no pods in {k.namespace} match {sel}", evidence)
    if len(ready) < len(pods):
        bad = ", ".join(f"{p.name} ({p.phase}, ready={p.ready})" for p in pods if p not in ready)
        return CheckResult(
            name, Verdict.FAIL, f"only {len(ready)}/{len(pods)} pods ready: {bad}", evidence
        )
    return CheckResult(name, Verdict.PASS, f"{len(ready)}/{len(pods)} pods ready", evidence)


def service_health(ctx: CheckContext) -> CheckResult:
    name = "service health (kubernetes)"
    k = kube_settings(ctx)
    if k is None:
        return _skip(name)
    svc_name = k.service or ctx.service
    status, body = _kube(ctx, k).service_get(k.namespace, svc_name, k.port, k.health_path)
    where = f"{k.namespace}/{svc_name}:{k.port}{k.health_path}"
    evidence = {"url": where, "status": status, "body": body[:120]}
    if status != 200:
        return CheckResult(name, Verdict.FAIL, f"{where} returned {status}", evidence)
    return CheckResult(name, Verdict.PASS, f"{where} returned 200", evidence)


def external_secret_synced(ctx: CheckContext) -> CheckResult:
    name = "external secrets synced"
    k = kube_settings(ctx)
    if k is None:
        return _skip(name)
    es = k.external_secret or f"{ctx.service}-secrets"
    status, message = _kube(ctx, k).external_secret_ready(k.namespace, es)
    evidence = {"external_secret": f"{k.namespace}/{es}", "ready": status, "message": message}
    if status != "True":
        return CheckResult(
            name,
            Verdict.FAIL,
            f"ExternalSecret {k.namespace}/{es} not synced (Ready={status}: {message})",
            evidence,
        )
    return CheckResult(name, Verdict.PASS, f"ExternalSecret {k.namespace}/{es} synced", evidence)


def hpa_status(ctx: CheckContext) -> CheckResult:
    """Shown as the runbook shows it (``kubectl get hpa``); a missing HPA is only a warning."""
    name = "hpa"
    k = kube_settings(ctx)
    if k is None:
        return _skip(name)
    hpas = _kube(ctx, k).hpas(k.namespace)
    rows = [
        {
            "name": h.name,
            "target": h.target,
            "min": h.min_replicas,
            "max": h.max_replicas,
            "current": h.current,
            "desired": h.desired,
        }
        for h in hpas
    ]
    if not hpas:
        return CheckResult(
            name,
            Verdict.WARN,
            f"no HorizontalPodAutoscaler in {k.namespace}",
            {"hpas": rows},
            required=False,
        )
    text = "; ".join(
        f"{h.name} → {h.target}: {h.current}/{h.desired} replicas (min {h.min_replicas}, "
        f"max {h.max_replicas})"
        for h in hpas
    )
    return CheckResult(name, Verdict.PASS, text, {"hpas": rows}, required=False)
