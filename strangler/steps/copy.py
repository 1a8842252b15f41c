"""``Action.COPY`` (schema_ready → copied): the rows from one snapshot, then keys, indexes,
foreign keys, triggers and sequences, then the count check (runbook patterns 1 and 2).

Creates the schema first when the service is still ``planned``. Resumable: the chunk plan,
each finished chunk and each post-load statement are recorded as they finish
(:class:`strangler.steps.records.Progress`), so the same command after a kill -9 carries on.
A service with ``strategy: online`` copies inside the creation of its replication slot,
under the slot's snapshot (:mod:`strangler.steps.online_copy`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strangler.durations import format_duration
from strangler.errors import CheckFailed, translate
from strangler.pg.copy.extract import CopyFigures, Resume, copy_rows
from strangler.pg.copy.rows import ChunkDone, CopyProgress, check_snapshot_id
from strangler.phases import Action, Phase
from strangler.steps import bulk, online_copy, preflight
from strangler.steps import create_schema as schema_step
from strangler.steps.records import ChunkRecord, CopyPlan, CopyWatermark
from strangler.steps.requirements import stated
from strangler.steps.runbook import Runbook
from strangler.steps.types import Advanced, Operation, Outcome, RunOptions, ServiceRef, StepPlan
from strangler.steps.wiring import endpoints

__all__ = ["DEFAULT_CHUNK_ROWS", "CopyResult", "copy", "plan"]

DEFAULT_CHUNK_ROWS = 250_000


@dataclass
class CopyResult:
    """What ``strangler copy`` did (or, with ``sql``, would do)."""

    service: str
    figures: CopyFigures | None = None
    schema: schema_step.SchemaResult | None = None  # created first, in the same command
    online: online_copy.OnlineResult | None = None
    sql: str | None = None  # --dry-run
    warnings: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.schema is not None and self.figures is not None:
            out["schema"] = self.schema.to_dict()
        elif self.schema is not None:
            out.update(self.schema.to_dict())
        if self.figures is not None:
            f = self.figures
            out.update(
                snapshot=f.snapshot,
                resumed=f.resumed,
                tables={
                    t: {"source_rows": c.source_rows, "target_rows": c.target_rows}
                    for t, c in f.tables.items()
                },
                chunks=f.chunks,
                chunks_copied=f.chunks_copied,
                chunks_skipped=f.chunks_skipped,
                bytes=f.bytes,
                formats=f.formats,
                statements=f.statements,
                sequences=f.sequences,
                warnings=f.warnings,
                seconds=f.seconds,
            )
        if self.online is not None:
            out.update(self.online.to_dict())
        if self.sql is not None:
            out.setdefault("tables", self.tables)
            out.setdefault("warnings", self.warnings)
            out["sql"] = self.sql
        if self.note:
            out["note"] = self.note
        return out


def copy(
    rb: Runbook,
    *,
    jobs: int = 2,
    snapshot: str | None = None,
    chunk_rows: int | None = None,
    progress: CopyProgress | None = None,
    dry_run: bool = False,
) -> CopyResult:
    """Copy the service's tables into its schema (creating it first when needed).

    ``snapshot``: copy from this exported snapshot instead of exporting one (the caller keeps
    the exporting transaction open until this returns). ``jobs``: parallel workers for rows,
    indexes and validation. Raises CheckFailed (exit 1) when the counts differ; the phase
    then stays ``schema_ready``.
    """
    if snapshot is not None:
        check_snapshot_id(snapshot)
    chunk_rows = chunk_rows or rb.service.copy_.chunk_rows  # the spec's copy.chunk_rows
    out = CopyResult(rb.name)
    online = rb.service.strategy == "online" and snapshot is None
    if online and not dry_run:
        online_copy.refuse_unpublishable(rb)
    if dry_run:
        if rb.phase == Phase.PLANNED:
            out.schema = schema_step.create_schema(rb, dry_run=True)
            out.note = "the rows are copied between the two parts of the SQL"
            return out
        rb.check(Action.COPY)
        ops = schema_step.exact_operations(rb, schema=False)
        out.sql = "\n".join(o.what for o in ops) + "\n"
        out.tables = list(rb.service.tables)
        return out
    # One lock from the first change to the last: the copy's own evidence is checked before
    # the schema it creates first, so a refused copy leaves the target as it found it.
    with rb.journal.lock(rb.name):
        if rb.phase == Phase.PLANNED:
            rb.require(Action.COPY)
            out.schema = schema_step.create_schema(rb)
        _copy_step(rb, out, online, jobs, snapshot, chunk_rows, progress)
    return out


def _copy_step(
    rb: Runbook,
    out: CopyResult,
    online: bool,
    jobs: int,
    snapshot: str | None,
    chunk_rows: int,
    progress: CopyProgress | None,
) -> None:
    # A copy that fails halfway (a server restarts, a connection drops) is resumed by the same
    # command, or undone: the rows it placed are its own (pg/schema/drop.py).
    resume_hint = (
        f"run 'strangler copy {rb.name}' again: it resumes from the chunks already copied; or "
        f"undo it with 'strangler rollback {rb.name} --schema --reason …'"
    )
    with (
        rb.step(Action.COPY, resumable=True) as step,
        translate(f"copy of {rb.name}", hint=resume_hint),
    ):
        bulk.reconcile_queue(rb)  # chunks workers finished after a coordinator stopped

        def run(snap: str | None) -> CopyFigures:
            return _copy(rb, jobs, snap, chunk_rows, progress, step.details)

        if online:
            # The copy runs inside the creation of the sync's slot, under its snapshot.
            out.online = online_copy.copy_online(rb, run)
            out.figures = out.online.figures
        else:
            out.figures = run(snapshot)
        step.details.update({k: v for k, v in out.to_dict().items() if k != "schema"})


def _copy(
    rb: Runbook,
    jobs: int,
    snapshot: str | None,
    chunk_rows: int,
    progress: CopyProgress | None,
    details: dict[str, Any],
) -> CopyFigures:
    stored = rb.progress.load(CopyPlan)
    done = rb.progress.chunks()
    resume = Resume(
        plan=stored.bounds if stored else None,
        chunk_rows={k: v.rows for k, v in done.items()},
        statements=frozenset(rb.progress.statements_done()),
    )
    details.update(resumed=stored is not None, chunks_skipped=len(done))

    def chunk_done(d: ChunkDone, snap: str) -> None:
        rb.progress.save_chunk(
            d.chunk.id, ChunkRecord(d.rows, d.bytes, d.format, snap, round(d.seconds, 3))
        )

    figures = copy_rows(
        endpoints(rb.spec, rb.name),
        tables=list(rb.service.tables),
        role=schema_step.role_request(rb.service),
        policy=schema_step.policy(rb.service),
        jobs=jobs,
        snapshot=snapshot,
        chunk_rows=chunk_rows,
        resume=resume,
        on_plan=lambda bounds: rb.progress.save(CopyPlan(bounds)),
        on_chunk=chunk_done,
        on_statement=rb.progress.statement_done,
        on_snapshot=lambda snap: details.update(snapshot=snap),
        progress=progress,
        loader=bulk.loader(rb, bulk.brake(rb, "copy")),  # issue 17: copy.engine, throttle
        on_xact=lambda chunk, xid: rb.progress.save_copy_xact(xid, chunk.id),
        # Read under several snapshots (steps/online_copy.py): foreign keys hold once sync
        # has caught up, and are validated then.
        defer_validation=online_copy.catching_up(rb),
    )
    rb.progress.save(
        CopyWatermark(figures.watermark_xid, {t: c.target_rows for t, c in figures.tables.items()})
    )
    if figures.mismatched:
        details.update(
            tables={
                t: {"source_rows": c.source_rows, "target_rows": c.target_rows}
                for t, c in figures.tables.items()
            }
        )
        lines = ", ".join(
            f"{t}: source {c.source_rows:,} vs target {c.target_rows:,}"
            for t, c in figures.mismatched.items()
        )
        raise CheckFailed(
            f"row counts differ after the copy ({lines})",
            hint=f"inspect the target schema; roll back with 'strangler rollback {rb.name} "
            "--schema --reason …' and copy again",
        )
    return figures


def plan(rb: ServiceRef, *, inspect: bool = False) -> StepPlan:
    svc = rb.service
    where = schema_step.target_name(rb)
    same = svc.target.dsn is None
    how = "INSERT … SELECT in the server" if same else "binary COPY between the servers"
    how = bulk.engine_summary(rb, how)  # issue 17: copy.engine workers | dms
    ops = []
    age = svc.copy_.max_snapshot_age
    if svc.strategy == "online" and age is not None:
        ops.append(
            Operation("monolith", "create the publication and the logical replication slot, "
                      "holding no snapshot; the copy reads its chunks under snapshots of its "
                      f"own, none older than {format_duration(age)}; sync then catches up "
                      "from the slot's start (catch-up rules until the copy's end)")
        )  # fmt: skip
    elif svc.strategy == "online":
        ops.append(
            Operation("monolith", "create the publication and the logical replication slot "
                      "with an exported snapshot; the copy reads that snapshot")
        )  # fmt: skip
    ops += [
        Operation(where, f"{rb.spec.source.schema_}.{t} → {svc.target.schema_}.{t} ({how})")
        for t in svc.tables
    ]
    ops.append(Operation(where, "primary keys and indexes (side by side), foreign keys "
                         "NOT VALID then VALIDATE, triggers, sequences, ANALYZE"))  # fmt: skip
    ops.append(Operation("both", "row counts in the copy's snapshot vs the copy"))
    return StepPlan(
        action=Action.COPY.value,
        source=Phase.SCHEMA_READY.value,
        target=Phase.COPIED.value,
        summary=f"copy {', '.join(svc.tables)} from one snapshot, then keys, indexes, foreign "
        "keys, sequences",
        operations=tuple(ops),
        requires=stated(Action.COPY, svc),
    )


def advance(rb: Runbook, opts: RunOptions) -> Outcome:
    waiting = preflight.ensure(rb, opts)
    if waiting is not None:
        return waiting
    done = copy(rb, jobs=opts.jobs, progress=opts.copy_progress)
    rows = sum(c.target_rows for c in done.figures.tables.values()) if done.figures else 0
    return Advanced(Action.COPY.value, rb.phase.value, f"copied {rows:,} rows", done)
