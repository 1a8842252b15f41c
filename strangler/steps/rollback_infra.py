"""``strangler rollback SERVICE --k8s [--to-revision N]`` and ``--terraform RESOURCE``.

The runbook's Kubernetes and Terraform rollbacks: ``kubectl rollout undo`` then ``rollout
status``, and ``terraform destroy -target`` after confirmation. Neither moves the service's
phase (they undo infrastructure, not migration steps), but each is journaled as an intent and
an outcome (steps ``rollback_k8s`` / ``rollback_terraform``) with its reason, and committed in
the infrastructure repository with the runbook's message when the spec names one
(``infra.repo``). A completed one in a dev spec's journal is what the pre-flight's "rollback
rehearsed" item looks for.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from strangler.checks.terraform import terraform_dir
from strangler.errors import BadInput
from strangler.infra.gitrepo import InfraRepo, k8s_rollback, terraform_rollback
from strangler.infra.k8s import Kube
from strangler.infra.terraform import Terraform
from strangler.steps.rollbacks import RollbackRequest
from strangler.steps.runbook import Runbook

__all__ = ["rollback_k8s", "rollback_terraform"]


def _journaled(
    rb: Runbook, step: str, reason: str, details: dict[str, Any], work: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    with rb.journal.lock(rb.name):
        intent = rb.journal.intent(rb.name, step, reason=reason, details=details)
        try:
            result = work()
        except BaseException as exc:
            rb.journal.outcome(intent, "failed", details={"error": str(exc)})
            raise
        rb.journal.outcome(intent, "ok", details=result)
    return result


def _commit(rb: Runbook, message: str) -> str | None:
    infra = rb.service.infra
    if infra is None:
        return None
    repo = InfraRepo(rb.spec.resolve(infra.repo), author=rb.journal.operator)
    return repo.commit(message, allow_empty=True)


def rollback_k8s(rb: Runbook, req: RollbackRequest) -> dict[str, Any]:
    k = rb.service.preflight.kubernetes if rb.service.preflight else None
    if k is None:
        raise BadInput(
            f"--k8s needs services.{rb.name}.preflight.kubernetes (namespace, deployment)",
        )
    kube = Kube.connect(rb.spec.resolve(k.kubeconfig) if k.kubeconfig else None, k.context)
    deployment = k.deployment or rb.name
    if req.dry_run:
        return kube.rollout_undo(k.namespace, deployment, req.to_revision, dry_run=True)

    def work() -> dict[str, Any]:
        plan = kube.rollout_undo(k.namespace, deployment, req.to_revision)
        plan["rollout"] = kube.wait_rollout(k.namespace, deployment)
        return plan

    result = _journaled(
        rb,
        "rollback_k8s",
        req.reason,
        {"deployment": f"{k.namespace}/{deployment}", "to_revision": req.to_revision},
        work,
    )
    commit = _commit(rb, k8s_rollback(rb.name, req.reason))
    if commit:
        result["commit"] = commit
    return result


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input(f"{question} [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def rollback_terraform(
    rb: Runbook, req: RollbackRequest, confirm: Callable[[str], bool] = _confirm
) -> dict[str, Any]:
    where = terraform_dir(rb.spec, rb.name)
    if where is None:
        raise BadInput(
            f"--terraform needs services.{rb.name}.preflight.terraform_dir (or "
            "infra.terraform_dir) in the spec"
        )
    if not req.target:
        raise BadInput("--terraform needs the resource address to destroy")
    tf = Terraform(where)
    tf.init()
    plan = tf.plan(targets=[req.target], destroy=True)
    if req.dry_run:
        return {"dir": str(where), "resource": req.target, "plan": plan.summary}
    if not plan.changes:
        raise BadInput(f"{req.target} is not in the Terraform state of {where}; nothing to destroy")
    if not req.yes and not confirm(f"destroy {req.target} in {where} ({plan.summary})?"):
        raise BadInput(
            f"not confirmed: {req.target} was left in place",
            hint="answer y at the prompt, or pass --yes",
        )

    def work() -> dict[str, Any]:
        return {
            "dir": str(where),
            "resource": req.target,
            "plan": plan.summary,
            "result": tf.destroy([req.target or ""]),
        }

    result = _journaled(
        rb, "rollback_terraform", req.reason, {"dir": str(where), "resource": req.target}, work
    )
    commit = _commit(rb, terraform_rollback(req.target, req.reason))
    if commit:
        result["commit"] = commit
    return result
