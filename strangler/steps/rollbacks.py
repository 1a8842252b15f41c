"""Every rollback: what the operator asks for, and :data:`ROLLBACKS`, the static table of them.

The rollbacks themselves are steps of their own (``rollback_traffic``, ``rollback_writes``,
``rollback_schema``, ``rollback_infra``). Each entry of :data:`ROLLBACKS` imports its step
only when it runs (issue 16): ``strangler rollback SERVICE --traffic`` is what an operator
types when the service misbehaves, and it should not first load the copy, the sync and the
schema code it will not use. The table is written out here, never filled at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strangler.errors import BadInput

if TYPE_CHECKING:
    from strangler.steps.runbook import Runbook

__all__ = ["ROLLBACKS", "Rollback", "RollbackRequest", "rollback_for"]


@dataclass(frozen=True)
class RollbackRequest:
    """What the operator asked for. ``target`` carries the kind's argument (a Terraform
    resource address); ``to_revision`` the Kubernetes revision."""

    reason: str
    dry_run: bool = False
    yes: bool = False
    target: str | None = None
    to_revision: int | None = None


@dataclass(frozen=True)
class Rollback:
    kind: str
    summary: str
    run: Callable[[Runbook, RollbackRequest], Any]  # returns the step's typed result


def _traffic(rb: Runbook, request: RollbackRequest) -> Any:
    from strangler.steps.rollback_traffic import rollback_traffic

    return rollback_traffic(rb, request)


def _writes(rb: Runbook, request: RollbackRequest) -> Any:
    from strangler.steps.rollback_writes import rollback_writes

    return rollback_writes(rb, reason=request.reason, dry_run=request.dry_run)


def _schema(rb: Runbook, request: RollbackRequest) -> Any:
    from strangler.steps.rollback_schema import rollback_schema

    return rollback_schema(rb, request)


def _k8s(rb: Runbook, request: RollbackRequest) -> Any:
    from strangler.steps.rollback_infra import rollback_k8s

    return rollback_k8s(rb, request)


def _terraform(rb: Runbook, request: RollbackRequest) -> Any:
    from strangler.steps.rollback_infra import rollback_terraform

    return rollback_terraform(rb, request)


ROLLBACKS: Mapping[str, Rollback] = {
    "traffic": Rollback(
        "traffic", "all traffic to the monolith at once, weights read back", _traffic
    ),
    "writes": Rollback(
        "writes", "writes back to the monolith; reverse sync drained first", _writes
    ),
    "schema": Rollback(
        "schema", "drop the service schema (and its role) while nothing wrote to it", _schema
    ),
    "k8s": Rollback("k8s", "Deployment back to its previous (or --to-revision) ReplicaSet", _k8s),
    "terraform": Rollback(
        "terraform", "terraform destroy -target RESOURCE, after confirmation", _terraform
    ),
}


def rollback_for(kind: str) -> Rollback:
    try:
        return ROLLBACKS[kind]
    except KeyError:
        valid = ", ".join(f"--{k}" for k in sorted(ROLLBACKS))
        raise BadInput(f"no rollback of kind --{kind} is available; available: {valid}") from None
