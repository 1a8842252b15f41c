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
"""

from strangler import errors, steps
from strangler.errors import (
    BadInput,
    CheckFailed,
    PhaseRefused,
    StranglerError,
    Unreachable,
)
from strangler.journal import Journal, open_journal
from strangler.phases import Action, Phase
from strangler.spec import Spec, load_spec
from strangler.steps.plan import build_plan
from strangler.steps.run import EXIT_WAITING, RunResult, run, run_all, run_until_done
from strangler.steps.runbook import Runbook
from strangler.steps.table import ROLLBACKS, STEPS
from strangler.steps.types import RunOptions, Waiting

__version__ = "0.1.0"

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
