"""``copy.engine: dms``: AWS DMS does the full load between strangler's schema and its keys
(issue 17).

strangler first creates the service schema with full fidelity (types, tables, defaults,
sequences, the role: what DMS skips), the copy's loader then runs a DMS full-load task in
``DO_NOTHING`` mode into those tables with strangler's own table mappings (the schema
rename), follows it table by table, removes the task and its endpoints, and the copy goes
on as always: keys, indexes, foreign keys, triggers, sequences, counts. ``strangler verify``
proves the rows. Full load only, and only for ``strategy: copy`` (the spec refuses online):
DMS does not read at the replication slot's snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from psycopg import sql

from strangler.aws import client as aws_client
from strangler.dms.control import DmsControl, TableProgress, TableStat, boto3_progress
from strangler.dms.control import endpoint_settings as endpoint_of
from strangler.dms.rules import table_mappings
from strangler.errors import BadInput
from strangler.pg.connect import connect
from strangler.pg.copy.chunks import Chunk
from strangler.pg.copy.extract import Loader
from strangler.pg.copy.rows import ChunkDone, CopyProgress, Endpoints, OnXact
from strangler.pg.schema.catalog import Catalog
from strangler.steps.types import JournaledRef
from strangler.work.loader import follow_up

__all__ = ["dms_loader", "identifier", "table_progress"]


def identifier(service: str, what: str) -> str:
    """A DMS identifier: letters, digits and single hyphens, starting with a letter."""
    return re.sub(r"-+", "-", f"strangler-{service}-{what}".replace("_", "-")).strip("-")


def table_progress(client: Any) -> TableProgress:
    """Where the load's per-table progress is read (tests replace it: moto lacks it)."""
    return boto3_progress(client)


def dms_loader(rb: JournaledRef) -> Loader:
    settings = rb.service.copy_.dms
    if settings is None:  # the spec refuses engine: dms without it
        raise BadInput(f"services.{rb.name}.copy.dms is missing")
    timeout = settings.timeout.total_seconds()

    def load(
        ends: Endpoints,
        catalog: Catalog,
        chunks: dict[str, list[Chunk]],
        *,
        snapshot: str,
        jobs: int,
        redo: set[str],
        binary: dict[str, bool],
        on_done: Callable[[ChunkDone], None],
        progress: CopyProgress | None = None,
        then: Mapping[str, Sequence[Sequence[Callable[[], object]]]] | None = None,
        between: Callable[[], None] | None = None,
        on_xact: OnXact | None = None,
    ) -> list[ChunkDone]:
        # DMS writes through its own sessions: no transaction of strangler's to name.
        tables = [t.name for t in catalog.tables if t.name in chunks]
        done: list[ChunkDone] = []
        if tables:
            target_dsn = ends.target_dsn or ends.source_dsn
            if redo:
                # DO_NOTHING appends: what a broken run loaded goes first.
                with connect(target_dsn, role=f"{rb.name} target") as conn:
                    conn.execute(
                        sql.SQL("TRUNCATE {}").format(
                            sql.SQL(", ").join(
                                sql.Identifier(ends.target_schema, t) for t in tables
                            )
                        )
                    )
            mappings = table_mappings(ends.source_schema, tables, ends.target_schema)
            dms = aws_client("dms", region=settings.region, endpoint_url=settings.endpoint_url)
            ctl = DmsControl(dms, poll=settings.poll.total_seconds())
            instance = ctl.instance(settings.replication_instance, settings.instance_class, timeout)
            source = ctl.endpoint(
                identifier(rb.name, "source"), "source", endpoint_of(ends.source_dsn, "monolith")
            )
            target = ctl.endpoint(
                identifier(rb.name, "target"), "target", endpoint_of(target_dsn, rb.name)
            )
            task = ctl.create_task(
                identifier(rb.name, "full-load"),
                instance=instance,
                source=source,
                target=target,
                mappings=mappings,
            )
            ctl.start(task, timeout)

            def table_done(stat: TableStat) -> None:
                for i, chunk in enumerate(chunks[stat.table]):
                    # DMS loads whole tables: the rows count once, on the table's first chunk.
                    result = ChunkDone(chunk, stat.rows if i == 0 else 0, 0, "dms")
                    done.append(result)
                    on_done(result)
                if progress:
                    progress.advance(stat.table, stat.rows, 0)

            ctl.follow(
                task,
                [(ends.source_schema, t) for t in tables],
                table_progress(dms),
                timeout=timeout,
                on_table=table_done,
            )
            ctl.delete_task(task.identifier)
            ctl.delete_endpoints(source, target)
        follow_up(then or {}, jobs)
        return done

    return load
