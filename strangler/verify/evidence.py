"""The evidence verification gives the runbook: no write or traffic cutover on a stale proof.

The runbook's "DO NOT proceed with cutover" becomes a rule the phase machine enforces: before
``cutover_writes`` or ``shift_traffic`` the newest verification that compared rows (``rows`` or
``checksum``; counts prove nothing about values) must have passed, and must be newer than the
last change the journal knows of to the copy: a successful copy, schema creation, schema
rollback or write rollback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from strangler.errors import CheckFailed
from strangler.evidence import requires
from strangler.journal import Entry
from strangler.phases import Action

if TYPE_CHECKING:
    from strangler.runbook import Runbook

__all__ = ["CHANGES_TO_COPY", "fresh_verification", "last_verification"]

# Outcomes after which an earlier verification no longer describes the copy.
CHANGES_TO_COPY = frozenset(
    {Action.COPY, Action.CREATE_SCHEMA, Action.ROLLBACK_SCHEMA, Action.ROLLBACK_WRITES}
)


def last_verification(entries: list[Entry], *, proof_only: bool = False) -> Entry | None:
    """The newest ``verify`` event in ``entries`` (with ``proof_only``: not a counts-only one)."""
    for entry in reversed(entries):
        if entry.kind != "event" or entry.step != str(Action.VERIFY):
            continue
        if proof_only and entry.details.get("mode") == "counts":
            continue
        return entry
    return None


@requires(Action.CUTOVER_WRITES, Action.SHIFT_TRAFFIC)
def fresh_verification(rb: Runbook) -> None:
    entries = rb.journal.history(rb.name)
    hint = f"strangler verify {rb.name}"
    proof = last_verification(entries, proof_only=True)
    if proof is None:
        raise CheckFailed(f"{rb.name}: the copy has never been verified", hint=hint)
    if proof.status != "passed":
        raise CheckFailed(
            f"{rb.name}: the last verification ({proof.at:%Y-%m-%d %H:%M:%S} UTC) found "
            "differences; do not proceed with cutover",
            hint=f"repair the copy, then run '{hint}'",
        )
    changes = [
        e for e in entries if e.kind == "outcome" and e.status == "ok" and e.step in CHANGES_TO_COPY
    ]
    if changes and changes[-1].id > proof.id:
        change = changes[-1]
        raise CheckFailed(
            f"{rb.name}: the copy changed ({change.step} at {change.at:%Y-%m-%d %H:%M:%S} UTC) "
            f"after the last passing verification ({proof.at:%Y-%m-%d %H:%M:%S} UTC)",
            hint=hint,
        )
