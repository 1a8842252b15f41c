"""Evidence a step needs before the phase machine lets it run.

The phase rules (:mod:`strangler.phases`) say what may follow what; evidence says whether the
world agrees right now: a passing verification newer than the last change to the copy before
writes or traffic move, a recent passing preflight before a copy or a cutover. Capabilities
register their requirement here, in their own module, so the runbook enforces it without
knowing about them::

    @requires(Action.SHIFT_TRAFFIC, Action.CUTOVER_WRITES)
    def fresh_verification(rb: Runbook) -> None:
        ...  # raise CheckFailed("…", hint="run 'strangler verify …'") when it does not hold

``--force --reason`` skips every requirement, and the override is journaled.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from strangler.phases import Action

if TYPE_CHECKING:
    from strangler.runbook import Runbook

__all__ = ["Requirement", "requirements_for", "requires"]

Requirement = Callable[["Runbook"], None]

_REQUIREMENTS: dict[Action, list[Requirement]] = {}

# The modules that register requirements. They are imported before the first check, so a
# program that drives a Runbook as a library gets the same rules as the command line does.
_PROVIDERS = (
    "strangler.verify.evidence",
    "strangler.checks.preflight",
    "strangler.decommission.evidence",
)
_loaded = False


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        import importlib

        for module in _PROVIDERS:
            importlib.import_module(module)


def requires(*actions: Action) -> Callable[[Requirement], Requirement]:
    def register(check: Requirement) -> Requirement:
        for action in actions:
            bucket = _REQUIREMENTS.setdefault(action, [])
            if check not in bucket:
                bucket.append(check)
        return check

    return register


def requirements_for(action: Action) -> list[Requirement]:
    _load()
    return list(_REQUIREMENTS.get(action, []))
