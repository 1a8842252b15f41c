"""The Kubernetes Indexed Job that runs ``strangler worker SERVICE`` (issue 17).

:func:`worker_job` builds two objects: a ConfigMap holding the spec file exactly as written
(its ``${VARS}`` unexpanded) and a Job of ``completionMode: Indexed`` whose pods run the
worker with that spec. Every ``${VAR}`` the spec names becomes an environment variable of
the pod from a Secret key (``secretKeyRef``), so no value is ever written into the manifest.

:func:`validate` checks each object against the official client's models, the schema the
client itself is generated from: an object that does not deserialize (a required field
missing, a wrong type) or does not come back identical (a misspelt or unknown field, which
the models drop) is refused, naming the field. :func:`apply` creates both through the API.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from strangler.errors import BadInput, CheckFailed
from strangler.infra.k8s import Kube, _mapped

__all__ = ["SPEC_PATH", "WorkerJob", "apply", "spec_variables", "validate", "worker_job"]

SPEC_PATH = "/etc/strangler/strangler.yaml"
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")
_MODELS = {("v1", "ConfigMap"): "V1ConfigMap", ("batch/v1", "Job"): "V1Job"}


@dataclass(frozen=True)
class WorkerJob:
    """The objects to create, in order, and what the operator should know about them."""

    namespace: str
    objects: tuple[dict[str, Any], ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def job(self) -> dict[str, Any]:
        return self.objects[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "objects": list(self.objects),
            "warnings": list(self.warnings),
        }


def spec_variables(spec_text: str) -> dict[str, bool]:
    """Each ``${VAR}`` the spec names, and whether it has a default (``${VAR:-x}``)."""
    found: dict[str, bool] = {}
    for m in _VAR.finditer(spec_text):
        if m.group(1):
            found[m.group(1)] = found.get(m.group(1), True) and m.group(2) is not None
    return found


def k8s_name(text: str) -> str:
    """A DNS-1123 label from a service name (``order_service`` → ``order-service``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return name[:52] or "strangler"


def worker_job(
    service: str,
    spec_text: str,
    *,
    image: str,
    namespace: str,
    parallelism: int,
    backoff_limit: int,
    secret: str | None,
    requests: Mapping[str, str],
    limits: Mapping[str, str],
    service_account: str | None = None,
    sqlite_state: bool = False,
) -> WorkerJob:
    """The ConfigMap and the Indexed Job of ``parallelism`` worker pods for ``service``."""
    if parallelism < 1:
        raise BadInput(f"--parallelism must be 1 or more, not {parallelism}")
    base = k8s_name(service)
    secret = secret or f"{base}-strangler"
    labels = {"app.kubernetes.io/name": "strangler-worker", "strangler/service": base}
    env: list[dict[str, Any]] = [
        {
            "name": var,
            "valueFrom": {
                "secretKeyRef": {"name": secret, "key": var, **({"optional": True} if dflt else {})}
            },
        }
        for var, dflt in sorted(spec_variables(spec_text).items())
    ]
    env.append({"name": "STRANGLER_SPEC", "value": SPEC_PATH})
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{base}-strangler-spec", "namespace": namespace, "labels": labels},
        "data": {"strangler.yaml": spec_text},
    }
    pod: dict[str, Any] = {
        "restartPolicy": "Never",  # a failed pod stays visible; the Job starts another
        "containers": [
            {
                "name": "worker",
                "image": image,
                "command": ["strangler"],
                "args": ["worker", service, "-f", SPEC_PATH, "--output", "json"],
                "env": env,
                "resources": {"requests": dict(requests), "limits": dict(limits)},
                "volumeMounts": [
                    {"name": "spec", "mountPath": SPEC_PATH.rsplit("/", 1)[0], "readOnly": True}
                ],
            }
        ],
        "volumes": [{"name": "spec", "configMap": {"name": config["metadata"]["name"]}}],
    }
    if service_account:
        pod["serviceAccountName"] = service_account
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": f"{base}-strangler-worker", "namespace": namespace, "labels": labels},
        "spec": {
            # Indexed: each pod knows its index ($JOB_COMPLETION_INDEX, the worker's name);
            # every index completes when its worker finds the queue empty.
            "completionMode": "Indexed",
            "completions": parallelism,
            "parallelism": parallelism,
            "backoffLimit": backoff_limit,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }
    warnings = []
    if sqlite_state:
        warnings.append(
            "the spec's state: is a sqlite file, which pods cannot share: each worker journals "
            "into its own pod; use a postgresql:// state shared by the team"
        )
    objects = (config, job)
    for obj in objects:
        validate(obj)
    return WorkerJob(namespace, objects, tuple(warnings))


def _diff(sent: Any, back: Any, path: str) -> list[str]:
    if isinstance(sent, Mapping):
        out: list[str] = []
        back_map = back if isinstance(back, Mapping) else {}
        for key, value in sent.items():
            if key not in back_map:
                out.append(f"{path}.{key}")
            else:
                out += _diff(value, back_map[key], f"{path}.{key}")
        return out
    if isinstance(sent, Sequence) and not isinstance(sent, str):
        back_list = back if isinstance(back, Sequence) and not isinstance(back, str) else []
        return [
            p
            for i, item in enumerate(sent)
            for p in _diff(item, back_list[i] if i < len(back_list) else None, f"{path}[{i}]")
        ]
    return [] if sent == back else [path]


def validate(obj: Mapping[str, Any]) -> None:
    """Refuse ``obj`` unless the official client's model of its kind reads it whole."""
    from kubernetes import client

    kind = (str(obj.get("apiVersion")), str(obj.get("kind")))
    model = _MODELS.get(kind)
    if model is None:
        raise BadInput(f"strangler does not write {kind[1]} objects of {kind[0]}")
    api: Any = client.ApiClient()  # untyped use: the deserializer below is not public
    try:
        # The generated deserializer (the models' own from-dict) is private in every
        # release of the client; it is what the client applies to the API server's answers.
        parsed = api._ApiClient__deserialize(dict(obj), model)
    except (ValueError, TypeError) as exc:
        raise CheckFailed(
            f"the {kind[1]} manifest does not match the Kubernetes API schema: "
            f"{str(exc).splitlines()[0]}",
            hint="this is a bug in strangler's manifest; please report it",
        ) from exc
    lost = _diff(obj, api.sanitize_for_serialization(parsed), kind[1])
    if lost:
        raise CheckFailed(
            f"the {kind[1]} manifest has fields the Kubernetes API does not know: "
            + ", ".join(lost[:5]),
            hint="this is a bug in strangler's manifest; please report it",
        )


def apply(kube: Kube, job: WorkerJob) -> list[str]:
    """Create the ConfigMap (replacing an older one) and the Job; returns what was done."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    # Plain dicts go to the API as they are (the models would drop what they do not know).
    core: Any = client.CoreV1Api(kube.api)
    batch: Any = client.BatchV1Api(kube.api)
    config, spec = job.objects
    name = config["metadata"]["name"]
    done = []
    try:
        with _mapped(f"ConfigMap {job.namespace}/{name}"):
            core.create_namespaced_config_map(job.namespace, config, _request_timeout=kube.timeout)
        done.append(f"created ConfigMap {job.namespace}/{name}")
    except Exception as exc:  # the mapped error of a 409: replace the older spec
        cause = exc.__cause__
        if not (isinstance(cause, ApiException) and cause.status == 409):
            raise
        with _mapped(f"ConfigMap {job.namespace}/{name}"):
            core.replace_namespaced_config_map(
                name, job.namespace, config, _request_timeout=kube.timeout
            )
        done.append(f"replaced ConfigMap {job.namespace}/{name}")
    job_name = spec["metadata"]["name"]
    try:
        with _mapped(f"Job {job.namespace}/{job_name}"):
            batch.create_namespaced_job(job.namespace, spec, _request_timeout=kube.timeout)
    except Exception as exc:
        cause = exc.__cause__
        if isinstance(cause, ApiException) and cause.status == 409:
            raise CheckFailed(
                f"Job {job.namespace}/{job_name} already exists (a Job's pods cannot change)",
                hint=f"kubectl delete job {job_name} -n {job.namespace}, then apply again",
            ) from exc
        if isinstance(cause, ApiException) and cause.status == 422:
            raise CheckFailed(
                f"the API server refused Job {job.namespace}/{job_name}: {cause.body}",
                hint="this is a bug in strangler's manifest; please report it",
            ) from exc
        raise
    done.append(f"created Job {job.namespace}/{job_name} ({spec['spec']['parallelism']} pods)")
    return done
