"""Online sync as the rest of strangler sees it: the plan, the status, the traffic gate.

- ``strangler plan`` gets a ``sync`` section: which mechanism carries the changes and why,
  whether native publication/subscription could, and what the monolith must allow (read-only).
- ``strangler status`` and ``strangler sync --status`` show the slot, the lag and a warning
  when the slot holds back more WAL than ``sync.max_retained_wal`` allows.
- Traffic steps of an online service require a healthy reverse sync
  (:func:`reverse_sync_healthy`): once traffic reaches the service, rolling writes back is
  only safe while the monolith's tables follow it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console

from strangler.errors import CheckFailed, StranglerError
from strangler.evidence import requires
from strangler.pg.connect import connect
from strangler.pg.sync import cdc
from strangler.pg.sync.slot import Direction, check_replica_identity, slot_name
from strangler.phases import Action, Phase
from strangler.plan import register_section
from strangler.spec import Spec, SyncSpec

if TYPE_CHECKING:
    from strangler.runbook import Runbook

__all__ = ["SyncSection", "direction_in", "reverse_sync_healthy", "sync_section", "sync_status"]

_BEFORE_SLOT = {Phase.PLANNED, Phase.SCHEMA_READY}
_FORWARD = {Phase.COPIED, Phase.SYNCING, Phase.VERIFIED}


def direction_in(phase: Phase) -> Direction | None:
    """Which way sync runs in ``phase`` (None: no slot exists yet, or any more)."""
    if phase in _BEFORE_SLOT or phase in (Phase.OLD_PATH_REMOVED, Phase.DECOMMISSIONED):
        return None
    return "forward" if phase in _FORWARD else "reverse"


def _limits(spec: Spec, service: str) -> SyncSpec:
    return spec.service(service).sync or SyncSpec()


# --------------------------------------------------------------------------------- plan


class SyncSection(dict[str, Any]):
    """JSON for ``--output json``; a few lines for people."""

    def render(self, console: Console) -> None:
        console.print(f"  [bold]sync[/]: {self['mechanism']}")
        console.print(f"   · why: {self['why']}")
        if "native" in self:
            console.print(f"   · native publication/subscription: {self['native']}")
        for key in ("slots", "limits", "monolith"):
            if self.get(key):
                console.print(f"   · {key}: {self[key]}")
        for w in self.get("warnings", []):
            console.print(f"  [yellow]warning:[/] {w}")


@register_section
def sync_section(spec: Spec, service: str, phase: Phase) -> tuple[str, Any] | None:
    svc = spec.service(service)
    if svc.strategy != "online":
        return "sync", SyncSection(
            mechanism="none (strategy: copy)",
            why="the copy is taken once; writes to the moved tables must stop before it is "
            "verified and traffic moves; strategy: online keeps the copy current instead",
        )
    src, dst = spec.source.schema_, svc.target.schema_
    native = src == dst and svc.target.dsn is not None
    limits = _limits(spec, service)
    section = SyncSection(
        mechanism="logical decoding (pgoutput), decoded and applied by strangler; streamed "
        "over a replication connection (START_REPLICATION)",
        why=(
            f"changes to {src}.<table> are applied to {dst}.<table>: strangler remaps the "
            "schema, stores its position in the same transaction as the rows (exactly once "
            "across kill -9), gates writes for the cutover and runs the same code in reverse. "
            "Streamed, the monolith decodes each change once; the SQL slot functions would "
            "decode again from the slot's restart point on every poll "
            "(docs/benchmarks-cdc.md compares the two)"
        ),
        native=(
            "possible here (same schema and table names on another instance), but not used: "
            "a subscription cannot gate writes or store its position with the rows, and "
            "strangler must run the reverse direction itself"
            if native
            else f"not applicable: a subscription applies to the same schema name, and "
            f"{src} → {dst} needs a remap"
        ),
        slots=f"{slot_name(service)} (until cutover), {slot_name(service, 'reverse')} (after)",
        limits=(
            f"max_retained_wal {limits.max_retained_wal or 'unset'} bytes, "
            f"max_lag {limits.max_lag} bytes before traffic may shift"
        ),
        native_possible=native,
        warnings=[],
    )
    try:
        with connect(spec.source.dsn, role="monolith", connect_timeout=5) as conn:
            row = conn.execute("SHOW wal_level").fetchone()
            level = row[0] if row else "?"
            section["monolith"] = f"wal_level = {level}"
            if level != "logical":
                section["warnings"].append(
                    f"the monolith runs with wal_level = {level}; logical decoding needs "
                    "wal_level = logical (ALTER SYSTEM SET wal_level = logical; then a restart)"
                )
            try:
                check_replica_identity(conn, src, list(svc.tables))
            except CheckFailed as exc:
                section["warnings"].append(exc.message)
    except StranglerError as exc:
        section["monolith"] = f"not inspected: {exc.message}"
    return "sync", section


# ------------------------------------------------------------------------------- status


def sync_status(spec: Spec, service: str, phase: Phase) -> dict[str, Any] | None:
    """``strangler status``'s sync fields for one service (None: no sync in this phase)."""
    if spec.service(service).strategy != "online":
        return None
    direction = direction_in(phase)
    if direction is None:
        return None
    try:
        info = cdc.status(cdc.SyncRoute.of(spec, service, direction))
    except StranglerError as exc:
        return {"sync": {"direction": direction, "error": exc.message}}
    keep = ("direction", "slot", "slot_exists", "lag_bytes", "retained_wal_bytes", "applied_at")
    return {"sync": {k: info[k] for k in keep}, "warnings": info["warnings"]}


# ------------------------------------------------------------------------------ traffic


@requires(Action.SHIFT_TRAFFIC)
def reverse_sync_healthy(rb: Runbook) -> None:
    """Before traffic moves on an online service: reverse sync exists and keeps up."""
    if rb.service.strategy != "online":
        return
    route = cdc.SyncRoute.of(rb.spec, rb.name, "reverse")
    info = cdc.status(route)
    hint = f"run 'strangler sync {rb.name}' (after cutover it applies the service's changes "
    hint += "to the monolith), then try again"
    if not info["slot_exists"] or info["applied_lsn"] is None:
        raise CheckFailed(
            f"{rb.name}: reverse sync slot {route.slot!r} does not exist, so the monolith's "
            "tables do not follow the service and rolling writes back would lose data",
            hint=f"'strangler cutover {rb.name}' creates it; 'strangler sync {rb.name} "
            "--status' shows what exists",
        )
    limit = _limits(rb.spec, rb.name).max_lag
    lag = info["lag_bytes"] or 0
    if lag > limit:
        raise CheckFailed(
            f"{rb.name}: reverse sync is {lag:,} bytes of WAL behind the service, more than "
            f"sync.max_lag ({limit:,})",
            hint=hint,
        )
