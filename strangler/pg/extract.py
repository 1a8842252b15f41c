"""Runbook patterns 1 and 2 as two journaled steps: create the schema, then copy into it.

Entry points (the CLI, the demo and the online-sync helper call these):

- :func:`create_schema` — ``Action.CREATE_SCHEMA``: types, tables, sequences and the service
  role with least-privilege grants, in one transaction; refuses a target schema that exists.
- :func:`copy_service` — ``Action.COPY`` (creating the schema first if needed): rows from one
  snapshot, then keys, indexes, foreign keys, triggers and sequences, then the count check.

**Contract with online sync (issue 5)**: ``copy_service(runbook, snapshot="…")`` copies from
that snapshot instead of exporting one. Every worker runs ``BEGIN ISOLATION LEVEL REPEATABLE
READ`` and ``SET TRANSACTION SNAPSHOT '<id>'``, so the copy is exactly the state at the
replication slot's consistent point. The caller must keep the transaction (or replication
connection) that exported the snapshot open until ``copy_service`` returns. A service with
``strategy: online`` and no snapshot given gets exactly that from
:mod:`strangler.pg.online_copy`: the slot is created first and the copy reads its snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from strangler.errors import BadInput, CheckFailed
from strangler.pg.connect import connect
from strangler.pg.copy.chunks import binary_safe, chunks_from_journal, plan_chunks
from strangler.pg.copy.postload import (
    count_rows,
    count_rows_apart,
    existing_keys,
    run_statements,
    set_sequences,
)
from strangler.pg.copy.rows import (
    ChunkDone,
    CopyProgress,
    Endpoints,
    check_snapshot_id,
    load_rows,
    snapshot_transaction,
)
from strangler.pg.online_copy import copy_online, preflight
from strangler.pg.schema.boundary import analyze
from strangler.pg.schema.catalog import Catalog, read_catalog
from strangler.pg.schema.ddl import Ddl, RolePlan, Statement, render_ddl, search_path, to_text
from strangler.phases import Action, Phase
from strangler.runbook import Runbook

__all__ = [
    "DEFAULT_CHUNK_ROWS",
    "Prepared",
    "copy_service",
    "create_schema",
    "endpoints",
    "prepare",
]

DEFAULT_CHUNK_ROWS = 250_000


def endpoints(rb: Runbook) -> Endpoints:
    svc = rb.service
    return Endpoints(rb.spec.source.dsn, rb.spec.source.schema_, svc.target.dsn, svc.target.schema_)


@dataclass(frozen=True)
class Prepared:
    catalog: Catalog
    ddl: Ddl
    warnings: tuple[str, ...]
    role_exists: bool


def _role_plan(rb: Runbook, target: psycopg.Connection[Any]) -> RolePlan | None:
    role = rb.service.target.role
    if role is None:
        return None
    exists = target.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role.name,)).fetchone()
    password = role.password.get_secret_value() if role.password else None
    if role.create and not exists and not password:
        raise BadInput(
            f"role {role.name!r} does not exist on the target and the spec gives no password",
            hint="set target.role.password (usually ${ENV_VAR}) or create the role yourself "
            "and set target.role.create: false",
        )
    if not role.create and not exists:
        raise BadInput(
            f"role {role.name!r} does not exist on the target and target.role.create is false",
            hint="create the role, or set target.role.create: true",
        )
    return RolePlan(role.name, password, role.create, bool(exists))


def prepare(
    rb: Runbook, source: psycopg.Connection[Any], target: psycopg.Connection[Any]
) -> Prepared:
    """Read the catalog (in ``source``'s transaction, if any) and render the DDL."""
    ends = endpoints(rb)
    catalog = read_catalog(source, ends.source_schema, list(rb.service.tables))
    boundary = analyze(source, catalog, rb.service, same_instance=ends.same_instance)
    boundary.raise_blocking()
    roles = frozenset(r[0] for r in target.execute("SELECT rolname FROM pg_roles").fetchall())
    role = _role_plan(rb, target)
    ddl = render_ddl(
        catalog,
        ends.target_schema,
        role=role,
        leaving=rb.service.foreign_keys.leaving,
        existing_roles=roles,
    )
    warnings = list(boundary.warnings)
    missing = sorted({g.grantee for t in catalog.tables for g in t.grants} - roles - {"PUBLIC"})
    if missing:
        warnings.append(
            "the target has no role " + ", ".join(missing) + ": their grants on the moved "
            "tables are not carried (create the roles first to keep them)"
        )
    for table in catalog.tables:
        if table.has_data and table.primary_key is None and table.replica_identity != "f":
            warnings.append(
                f"table {table.name!r} has no primary key: it copies, but online sync will "
                "need a replica identity (ALTER TABLE … REPLICA IDENTITY FULL or a unique index)"
            )
    return Prepared(catalog, ddl, tuple(warnings), bool(role and role.exists))


def _schema_state(target: psycopg.Connection[Any], schema: str) -> tuple[bool, list[str]]:
    exists = target.execute("SELECT to_regnamespace(%s) IS NOT NULL", (schema,)).fetchone()
    rels = target.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = to_regnamespace(%s) "
        "AND relkind IN ('r', 'p', 'v', 'm', 'S') ORDER BY relname",
        (schema,),
    ).fetchall()
    return bool(exists and exists[0]), [r[0] for r in rels]


def create_schema(rb: Runbook, *, dry_run: bool = False) -> dict[str, Any]:
    """Runbook step 1 (and the DDL of step 3): the service's schema and role, in one go."""
    ends = endpoints(rb)
    if not any(e.step == str(Action.CREATE_SCHEMA) for e in rb.journal.dangling(rb.name)):
        rb.check(Action.CREATE_SCHEMA)  # PhaseRefused says what comes first, or next
    with (
        connect(ends.source_dsn, role="monolith") as source,
        connect(ends.target_dsn or ends.source_dsn, role="service target") as target,
    ):
        prepared = prepare(rb, source, target)
        exists, relations = _schema_state(target, ends.target_schema)
        role = rb.service.target.role
        record = {
            "schema": ends.target_schema,
            "role": role.name if role else None,
            "role_created": bool(role and role.create and not prepared.role_exists),
        }
        result: dict[str, Any] = {
            "schema": ends.target_schema,
            "tables": list(prepared.catalog.names),
            "warnings": list(prepared.warnings),
        }
        crashed = next(
            (e for e in rb.journal.dangling(rb.name) if e.step == str(Action.CREATE_SCHEMA)), None
        )
        # The DDL is one transaction: a schema that exists after a crash of this step is the
        # complete schema that step made; its intent says whether it made the role.
        made = exists and set(prepared.catalog.names) <= set(relations)
        if made and crashed is not None and not dry_run:
            with rb.step(Action.CREATE_SCHEMA, resumable=True) as step:
                record["role_created"] = bool(crashed.details.get("role_created"))
                rb.journal.put(rb.name, "schema/created", record)
                step.details.update(result, recovered=True)
            return {**result, "recovered": True}
        if exists:
            raise BadInput(
                f"the target already has a schema {ends.target_schema!r}"
                + (f" holding {', '.join(relations[:10])}" if relations else " (empty)")
                + "; strangler creates the service schema itself and never writes into one it "
                "did not make",
                hint=f"choose another target.schema, or drop it if it is a leftover: "
                f"'strangler rollback {rb.name} --schema' when strangler made it",
            )
        text = to_text(prepared.ddl, ends.target_schema, target)
        if dry_run:
            return {**result, "sql": text}
        with rb.step(
            Action.CREATE_SCHEMA,
            details={"schema": ends.target_schema, "role_created": record["role_created"]},
            resumable=True,
        ) as step:
            with target.transaction():
                target.execute(search_path(ends.target_schema, local=True))
                for stmt in prepared.ddl.schema:
                    _run_schema_statement(target, stmt, ends.target_schema)
            rb.journal.put(rb.name, "schema/created", record)
            step.details.update(result)
        return result


# What the target server lacks (ICU, a provider, a type or function of another schema): the
# schema transaction rolls back, so nothing changed and the operator can fix and re-run.
_TARGET_LACKS = (
    psycopg.errors.FeatureNotSupported,
    psycopg.errors.UndefinedObject,
    psycopg.errors.UndefinedFunction,
)


def _run_schema_statement(target: psycopg.Connection[Any], stmt: Statement, schema: str) -> None:
    try:
        target.execute(stmt.query)
    except _TARGET_LACKS as exc:
        raise BadInput(
            f"the target cannot create {stmt.key} of schema {schema!r}: "
            f"{str(exc).splitlines()[0]}; nothing was changed",
            hint="give the target what the monolith's schema uses (e.g. a server built with "
            "ICU for an ICU collation, the types of other schemas), or leave the column out; "
            "'strangler copy --dry-run' prints the SQL",
        ) from exc


def _count_expected(
    source: psycopg.Connection[Any],
    catalog: Catalog,
    chunks: dict[str, list[Any]],
    done_before: dict[str, Any],
) -> dict[str, int]:
    """Rows each table must have: counted in this run's snapshot, plus rows of chunks that an
    earlier (interrupted) run copied from its own snapshot."""
    expected: dict[str, int] = {}
    for table, parts in chunks.items():
        earlier = [c for c in parts if c.key in done_before]
        if not earlier:
            expected[table] = count_rows(source, catalog.schema, [table])[table]
            continue
        total = sum(int(done_before[c.key]["rows"]) for c in earlier)
        for c in parts:
            if c.key not in done_before:
                total += count_rows(source, catalog.schema, [table], {table: c.where()})[table]
        expected[table] = total
    return expected


def copy_service(
    rb: Runbook,
    *,
    jobs: int = 2,
    snapshot: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: CopyProgress | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Copy the service's tables into its schema (creating it first when needed).

    ``snapshot``: copy from this exported snapshot (see the module docstring) instead of
    exporting one. ``jobs``: parallel workers for rows, indexes and validation.
    Raises CheckFailed (exit 1) when the counts differ; the phase then stays ``schema_ready``.
    """
    if snapshot is not None:
        check_snapshot_id(snapshot)
    ends = endpoints(rb)
    result: dict[str, Any] = {}
    online = rb.service.strategy == "online" and snapshot is None
    if online and not dry_run:
        preflight(rb)
    if rb.phase == Phase.PLANNED:
        if dry_run:
            created = create_schema(rb, dry_run=True)
            return {**created, "note": "the rows are copied between the two parts of the SQL"}
        result["schema"] = create_schema(rb)
    elif dry_run:
        rb.check(Action.COPY)
        with (
            connect(ends.source_dsn, role="monolith") as source,
            connect(ends.target_dsn or ends.source_dsn, role="service target") as target,
        ):
            prepared = prepare(rb, source, target)
            text = to_text(prepared.ddl, ends.target_schema, target, schema=False)
        return {
            "tables": list(prepared.catalog.names),
            "warnings": list(prepared.warnings),
            "sql": text,
        }
    with rb.step(Action.COPY, resumable=True) as step:

        def copy(snap: str | None) -> dict[str, Any]:
            return _copy(rb, ends, jobs, snap, chunk_rows, progress, step.details)

        if online:
            # The copy runs inside the creation of the sync's slot, under its snapshot.
            result.update(copy_online(rb, copy))
        else:
            result.update(copy(snapshot))
        step.details.update({k: v for k, v in result.items() if k != "schema"})
    return result


def _copy(
    rb: Runbook,
    ends: Endpoints,
    jobs: int,
    snapshot: str | None,
    chunk_rows: int,
    progress: CopyProgress | None,
    details: dict[str, Any],
) -> dict[str, Any]:
    journal, name = rb.journal, rb.name
    target_dsn = ends.target_dsn or ends.source_dsn
    with (
        connect(ends.source_dsn, role="monolith") as source,
        connect(target_dsn, role="service target") as target,
    ):
        if snapshot is None:
            source.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            row = source.execute("SELECT pg_export_snapshot()").fetchone()
            snap = str(row[0]) if row else ""
        else:
            snapshot_transaction(source, snapshot, read_only=True)
            snap = snapshot
        prepared = prepare(rb, source, target)
        catalog = prepared.catalog
        stored = journal.get(name, "copy/plan")
        resuming = stored is not None
        if stored is None:
            _refuse_data(target, ends.target_schema, catalog)
            chunks = plan_chunks(source, catalog, chunk_rows)
            journal.put(
                name, "copy/plan", {t: [c.to_list() for c in cs] for t, cs in chunks.items()}
            )
        else:
            chunks = chunks_from_journal(stored)
        done_before = journal.items(name, "copy/chunk/")
        redo = (
            {c.key for cs in chunks.values() for c in cs if c.key not in done_before}
            if resuming
            else set()
        )
        pending = {t: [c for c in cs if c.key not in done_before] for t, cs in chunks.items()}
        details.update(snapshot=snap, resumed=resuming, chunks_skipped=len(done_before))
        if progress:
            for table in catalog.tables:
                if table.has_data:
                    skipped = sum(
                        int(done_before[c.key]["rows"])
                        for c in chunks[table.name]
                        if c.key in done_before
                    )
                    progress.table_started(
                        table.name, table.estimated_rows, len(chunks[table.name])
                    )
                    if skipped:
                        progress.advance(table.name, skipped, 0)
        binary = {} if ends.same_instance else binary_safe(source, catalog)

        def chunk_done(d: ChunkDone) -> None:
            journal.put(
                name,
                d.chunk.key,
                {"rows": d.rows, "bytes": d.bytes, "format": d.format, "snapshot": snap},
            )

        clock = time.monotonic()
        seconds: dict[str, float] = {}
        done_ddl = set(journal.items(name, "copy/ddl/"))
        skip = {k.removeprefix("copy/ddl/") for k in done_ddl}
        if resuming:
            skip |= existing_keys(target, ends.target_schema)

        ran: list[str] = []

        def ddl_done(stmt: Any) -> None:
            journal.put(name, "copy/ddl/" + stmt.key, True)
            skip.add(stmt.key)
            ran.append(stmt.key)

        def run(stmts: list[Any]) -> Callable[[], object]:
            return lambda: run_statements(
                target_dsn, ends.target_schema, stmts, jobs=1, skip=set(skip), on_done=ddl_done
            )

        def keys_of(table: str) -> list[list[Callable[[], object]]]:
            """Each index on its own (they build side by side), then the constraints."""
            stmts = [s for s in prepared.ddl.keys if s.table == table]
            indexes = [s for s in stmts if s.key.startswith("index:")]
            rest = [s for s in stmts if not s.key.startswith("index:")]
            return [[run([s]) for s in indexes], [run(rest)] if rest else []]

        # A leaf table's keys and indexes are built as soon as its rows are in; those of a
        # partitioned parent wait for all partitions (the keys phase below).
        early = {t.name: keys_of(t.name) for t in catalog.tables if t.has_data}
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="count") as counter:
            # The runbook's source counts, in the snapshot, run beside the load on the
            # connection that holds the snapshot (the load has connections of its own).
            counting = counter.submit(_count_expected, source, catalog, chunks, done_before)
            loaded = load_rows(
                ends, catalog, {t: cs for t, cs in pending.items() if cs}, snapshot=snap,
                jobs=jobs, redo=redo, binary=binary, on_done=chunk_done, progress=progress,
                then=early,
            )  # fmt: skip
            seconds["load"] = round(time.monotonic() - clock, 3)
            expected = counting.result()
        # Everything else reads the live monolith; the snapshot is not needed any longer.
        source.execute("COMMIT")

        for phase, stmts in prepared.ddl.phases()[1:]:
            clock = time.monotonic()
            parallel = jobs if phase in ("keys", "validate", "analyze") else 1
            # Keys: the indexes first (side by side), then what attaches or needs them.
            waves = (
                [[s for s in stmts if s.key.startswith("index:")],
                 [s for s in stmts if not s.key.startswith("index:")]]
                if phase == "keys"
                else [stmts]
            )  # fmt: skip
            for wave in waves:
                run_statements(
                    target_dsn, ends.target_schema, wave, jobs=parallel, skip=skip,
                    on_done=ddl_done,
                )  # fmt: skip
            seconds[phase] = round(time.monotonic() - clock, 3)
        clock = time.monotonic()
        sequences = set_sequences(source, target, catalog, ends.target_schema)
        actual = count_rows_apart(target_dsn, ends.target_schema, list(expected), jobs=jobs)
        seconds["sequences_and_counts"] = round(time.monotonic() - clock, 3)
        watermark = target.execute("SELECT pg_current_xact_id()::text").fetchone()
        journal.put(
            name, "copy/watermark", {"xid": watermark[0] if watermark else None, "rows": actual}
        )
        mismatched = {t: (expected[t], actual[t]) for t in expected if expected[t] != actual[t]}
        formats = sorted({d.format for d in loaded})
        out = {
            "snapshot": snap,
            "resumed": resuming,
            "tables": {t: {"source_rows": expected[t], "target_rows": actual[t]} for t in expected},
            "chunks": sum(len(cs) for cs in chunks.values()),
            "chunks_copied": len(loaded),
            "chunks_skipped": len(done_before),
            "bytes": sum(d.bytes for d in loaded),
            "formats": formats,
            "statements": len(ran),
            "sequences": sequences,
            "warnings": list(prepared.warnings),
            "seconds": seconds,
        }
        if mismatched:
            details.update(out)
            lines = ", ".join(
                f"{t}: source {s:,} vs target {a:,}" for t, (s, a) in mismatched.items()
            )
            raise CheckFailed(
                f"row counts differ after the copy ({lines})",
                hint=f"inspect the target schema; roll back with 'strangler rollback {rb.name} "
                "--schema' and copy again",
            )
        return out


def _refuse_data(target: psycopg.Connection[Any], schema: str, catalog: Catalog) -> None:
    """A first copy must find the tables strangler created still empty."""
    for table in catalog.tables:
        if not table.has_data:
            continue
        row = target.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(schema, table.name))
        ).fetchone()
        if row and row[0]:
            raise BadInput(
                f"target table {schema}.{table.name} already holds rows, and no copy of it is "
                "in the journal: something else wrote there",
                hint="find out who; then roll back the schema and copy again",
            )
