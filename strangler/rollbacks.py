"""The kinds of rollback ``strangler rollback SERVICE --<kind>`` can do, one handler each.

The runbook has a rollback per layer (traffic, writes, schema, Kubernetes, Terraform); each
capability registers its own handler here from its own module, and the one ``rollback``
command dispatches to it. A kind nobody registered is refused with the kinds that exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from strangler.errors import BadInput

if TYPE_CHECKING:
    from strangler.runbook import Runbook

__all__ = ["RollbackRequest", "handler_for", "kinds", "register_rollback"]


@dataclass(frozen=True)
class RollbackRequest:
    """What the operator asked for. ``target`` carries the kind's argument (a revision, a
    Terraform resource address)."""

    reason: str
    dry_run: bool = False
    yes: bool = False
    target: str | None = None
    to_revision: int | None = None


Handler = Callable[["Runbook", RollbackRequest], dict[str, Any]]
_HANDLERS: dict[str, tuple[Handler, str]] = {}


def register_rollback(kind: str, summary: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _HANDLERS[kind] = (handler, summary)
        return handler

    return register


def _load() -> None:
    # Handlers live with their capabilities; importing the CLI modules imports those.
    import strangler.cli  # noqa: F401


def kinds() -> dict[str, str]:
    _load()
    return {k: summary for k, (_, summary) in sorted(_HANDLERS.items())}


def handler_for(kind: str) -> Handler:
    _load()
    try:
        return _HANDLERS[kind][0]
    except KeyError:
        valid = ", ".join(f"--{k}" for k in sorted(_HANDLERS)) or "(none available yet)"
        raise BadInput(f"no rollback of kind --{kind} is available; available: {valid}") from None
