"""What every rollback takes and gives: the operator's request and a typed result.

The rollbacks themselves are steps of their own (``rollback_traffic``, ``rollback_writes``,
``rollback_schema``, ``rollback_infra``); :data:`strangler.steps.ROLLBACKS` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RollbackRequest"]


@dataclass(frozen=True)
class RollbackRequest:
    """What the operator asked for. ``target`` carries the kind's argument (a Terraform
    resource address); ``to_revision`` the Kubernetes revision."""

    reason: str
    dry_run: bool = False
    yes: bool = False
    target: str | None = None
    to_revision: int | None = None
