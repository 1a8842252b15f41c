"""The evidence each step needs at the moment it acts, as one static table.

The phase rules (:mod:`strangler.phases`) say what may follow what; evidence says whether the
world agrees right now. A phase reached earlier is never taken as proof: ``stable`` does not
prove the old tables unwritten today, ``verified`` does not survive a re-copy.

Each :class:`Requirement` states what must hold and how fresh the evidence must be.
:meth:`strangler.steps.runbook.Runbook.step` runs :data:`REQUIREMENTS` ``[action]`` inside
the service's lock, right before the step's intent, so nobody can act on the service between
the check and the act; the evidence each was checked against goes into the intent
(``details["evidence"]``), so the journal shows what the step relied on. A refusal raises
CheckFailed before the intent: nothing is journaled as done and nothing changes anywhere.

``--force --reason`` sets aside the requirements that may be set aside (journaled as
``forced``); a rollback's win over a traffic move never is. A step that resumes after a crash
skips the requirements its own first half makes untrue (the old tables already moved, the
forward slot already dropped): they were checked, and recorded, when it began.

The table is written out here (not filled in by whatever modules happened to be imported),
so a program that drives a ``Runbook`` as a library gets exactly the rules the command line
enforces. The checks themselves are :mod:`strangler.steps.proofs` and
:mod:`strangler.steps.proofs_decommission`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from strangler.phases import Action
from strangler.spec import ServiceSpec
from strangler.steps import proofs as ev
from strangler.steps import proofs_decommission as dv
from strangler.steps.types import JournaledRef, Moment

__all__ = [
    "REQUIREMENTS",
    "Requirement",
    "archive_intact",
    "decommission_check_holds",
    "forward_sync_alive",
    "fresh_verification",
    "grace_period_over",
    "no_dependents",
    "no_rollback_since",
    "no_writes_since_copy",
    "old_tables_quiet",
    "passing_decommission_check",
    "recent_preflight",
    "requirements_for",
    "retired_tables_untouched",
    "reverse_sync_alive",
    "reverse_sync_healthy",
    "reverse_sync_not_needed",
    "stated",
]

Check = Callable[[JournaledRef, Moment], dict[str, Any]]


@dataclass(frozen=True)
class Requirement:
    """One piece of evidence a step needs: what must hold (``needs``), how fresh the
    evidence must be and where it is read (``fresh``), and the check that reads it.

    Call it with a runbook (and the :class:`Moment`) to check it: it returns the evidence
    or raises CheckFailed."""

    name: str
    needs: str
    fresh: str
    check: Check
    on_resume: bool = True  # also when the step finishes one a crash interrupted
    overridable: bool = True  # --force --reason may set it aside
    # Which services it concerns: "always", "online" (strategy online only), "preflight"
    # (only with a preflight: section). The check itself skips the others, saying so.
    when: str = "always"

    def concerns(self, svc: ServiceSpec) -> bool:
        if self.when == "online":
            return svc.strategy == "online"
        if self.when == "preflight":
            return svc.preflight is not None
        return True

    def stated(self) -> str:
        """What it needs and how fresh, as a plan shows it."""
        return f"{self.needs} ({self.fresh})"

    def __call__(self, rb: JournaledRef, moment: Moment | None = None) -> dict[str, Any]:
        return self.check(rb, moment or Moment())


recent_preflight = Requirement(
    "recent_preflight",
    needs="a passing preflight (when the spec has a preflight: section)",
    fresh="younger than preflight.max_age; the journal, read in the lock",
    check=ev.recent_preflight,
    when="preflight",
)
fresh_verification = Requirement(
    "fresh_verification",
    needs="the newest row-level verification passed",
    fresh="no change to the copy or its data path since it (copy, create_schema, "
    "rollback_schema, rollback_writes, a stop of the forward sync); the journal, in the lock",
    check=ev.verification,
)
forward_sync_alive = Requirement(
    "forward_sync_alive",
    needs="online: the forward slot and its stored position exist",
    fresh="measured now on both servers",
    check=ev.forward_sync_alive,
    on_resume=False,  # a cutover killed halfway dropped the forward slot itself
    when="online",
)
reverse_sync_alive = Requirement(
    "reverse_sync_alive",
    needs="the reverse slot and its stored position exist",
    fresh="measured now on both servers",
    check=ev.reverse_sync_alive,
    on_resume=False,  # a rollback killed halfway dropped the reverse slot itself
)
reverse_sync_healthy = Requirement(
    "reverse_sync_healthy",
    needs="online: reverse sync exists and lags less than sync.max_lag",
    fresh="measured now on both servers",
    check=ev.reverse_sync_healthy,
    when="online",
)
no_rollback_since = Requirement(
    "no_rollback_since",
    needs="no traffic rollback since the move was decided (a walk: no rollback record)",
    fresh="the journal, re-read in the lock against the newest entry the mover had seen",
    check=ev.no_rollback_since,
    overridable=False,  # an operator's rollback always wins, --force or not
)
no_writes_since_copy = Requirement(
    "no_writes_since_copy",
    needs="nothing but strangler wrote to the service schema",
    fresh="measured now on the target: the copy's watermark xid and row counts (copy), the "
    "write gate closed on every table or no rows at all (online)",
    check=ev.no_writes_since_copy,
)
reverse_sync_not_needed = Requirement(
    "reverse_sync_not_needed",
    needs="a reverse sync stops only with all of the route on the service and its final "
    "bake over (a forward stop makes the verification obsolete instead)",
    fresh="the journal's phase and bake record, read in the lock",
    check=ev.reverse_sync_not_needed,
)
passing_decommission_check = Requirement(
    "passing_decommission_check",
    needs="the newest decommission --check passed",
    fresh="made while traffic has been at 100 % without interruption; the journal, in the lock",
    check=dv.decommission_check_holds,
)
decommission_check_holds = passing_decommission_check
old_tables_quiet = Requirement(
    "old_tables_quiet",
    needs="no write to the old tables, the write guard on each",
    fresh="within decommission.write_window, measured now: the guard's log and the server's "
    "write counters",
    check=dv.old_tables_quiet,
    on_resume=False,  # a remove_old_path killed halfway has moved the tables itself
)
no_dependents = Requirement(
    "no_dependents",
    needs="no view or foreign key outside the old tables uses them",
    fresh="the monolith's catalog, read now",
    check=dv.no_dependents,
    on_resume=False,
)
grace_period_over = Requirement(
    "grace_period_over",
    needs="decommission.drop_old_tables_after has passed since the old tables were renamed",
    fresh="the journal's clock, now",
    check=dv.grace_period_over,
)
archive_intact = Requirement(
    "archive_intact",
    needs="the archive of the old tables is there, byte for byte",
    fresh="its sha256 computed now",
    check=dv.archive_intact,
    overridable=False,  # without the archive, a drop loses the rows for good
)
retired_tables_untouched = Requirement(
    "retired_tables_untouched",
    needs="nothing wrote to the retired tables after they were archived",
    fresh="their write counters now against the rename's",
    check=dv.retired_tables_untouched,
    on_resume=False,  # a drop killed halfway took some of them already
)

REQUIREMENTS: Mapping[Action, tuple[Requirement, ...]] = {
    Action.CREATE_SCHEMA: (recent_preflight,),
    Action.COPY: (recent_preflight,),
    Action.MOVE: (recent_preflight,),
    Action.CUTOVER_WRITES: (fresh_verification, recent_preflight, forward_sync_alive),
    Action.ROLLBACK_WRITES: (reverse_sync_alive,),
    Action.SHIFT_TRAFFIC: (no_rollback_since, fresh_verification, reverse_sync_healthy),
    Action.MARK_STABLE: (passing_decommission_check,),
    Action.REMOVE_OLD_PATH: (passing_decommission_check, old_tables_quiet, no_dependents),
    Action.DECOMMISSION: (grace_period_over, archive_intact, retired_tables_untouched),
    Action.ROLLBACK_SCHEMA: (no_writes_since_copy,),
    Action.STOP_SYNC: (reverse_sync_not_needed,),
}


def requirements_for(action: Action) -> tuple[Requirement, ...]:
    return REQUIREMENTS.get(action, ())


def stated(action: Action, svc: ServiceSpec) -> tuple[str, ...]:
    """The requirements of ``action`` that concern ``svc``, in words: what each step's plan
    lists under "requires" (the table above is the one source of both)."""
    return tuple(r.stated() for r in requirements_for(action) if r.concerns(svc))
