"""strangler: carve services out of a PostgreSQL monolith, step by step, with evidence.

The public API: load a spec, open its journal, and run one step or the whole runbook::

    import strangler

    spec = strangler.load_spec("strangler.yaml")
    with strangler.open_journal(spec.state_url(), operator="ci") as journal:
        rb = strangler.Runbook(spec, journal, "order_service")
        result = strangler.run(rb)               # as far as evidence and gates allow
        if result.status == "waiting":
            print(result.waiting.message)        # call again later
        strangler.steps.verify.verify(rb)        # or one step at a time

Every step lives in :mod:`strangler.steps` (one module each; :data:`STEPS` and
:data:`ROLLBACKS` list them), and every error strangler raises is a
:class:`StranglerError` (:mod:`strangler.errors` draws the tree).

The names are resolved when first used (PEP 562), so importing a submodule (the command line,
``strangler.errors``) does not load the whole library first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strangler import errors, steps
    from strangler.errors import BadInput, CheckFailed, PhaseRefused, StranglerError, Unreachable
    from strangler.journal import Journal, open_journal
    from strangler.phases import Action, Phase
    from strangler.spec import Spec, load_spec
    from strangler.steps.plan import build_plan
    from strangler.steps.rollbacks import ROLLBACKS
    from strangler.steps.run import EXIT_WAITING, RunResult, run, run_all, run_until_done
    from strangler.steps.runbook import Runbook
    from strangler.steps.table import STEPS
    from strangler.steps.types import RunOptions, Waiting

__version__ = "0.1.0"

# Where each public name lives: written out, resolved on first access.
_WHERE = {
    "errors": "strangler.errors",
    "steps": "strangler.steps",
    "BadInput": "strangler.errors",
    "CheckFailed": "strangler.errors",
    "PhaseRefused": "strangler.errors",
    "StranglerError": "strangler.errors",
    "Unreachable": "strangler.errors",
    "Journal": "strangler.journal",
    "open_journal": "strangler.journal",
    "Action": "strangler.phases",
    "Phase": "strangler.phases",
    "Spec": "strangler.spec",
    "load_spec": "strangler.spec",
    "build_plan": "strangler.steps.plan",
    "EXIT_WAITING": "strangler.steps.run",
    "RunResult": "strangler.steps.run",
    "run": "strangler.steps.run",
    "run_all": "strangler.steps.run",
    "run_until_done": "strangler.steps.run",
    "Runbook": "strangler.steps.runbook",
    "ROLLBACKS": "strangler.steps.rollbacks",
    "STEPS": "strangler.steps.table",
    "RunOptions": "strangler.steps.types",
    "Waiting": "strangler.steps.types",
}

__all__ = [
    "EXIT_WAITING",
    "ROLLBACKS",
    "STEPS",
    "Action",
    "BadInput",
    "CheckFailed",
    "Journal",
    "Phase",
    "PhaseRefused",
    "RunOptions",
    "RunResult",
    "Runbook",
    "Spec",
    "StranglerError",
    "Unreachable",
    "Waiting",
    "__version__",
    "build_plan",
    "errors",
    "load_spec",
    "open_journal",
    "run",
    "run_all",
    "run_until_done",
    "steps",
]
_MODULES = {"errors", "steps"}  # names that are modules themselves


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'strangler' has no attribute {name!r}")
    module = importlib.import_module(where)
    value = module if name in _MODULES else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
