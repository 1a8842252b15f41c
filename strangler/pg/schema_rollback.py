"""``strangler rollback SERVICE --schema``: drop the service schema while nothing wrote to it.

"Nothing wrote" is proven, not assumed. At the end of a copy strangler stores a watermark:
the target's transaction id after its last write, and the row count of every table. The
rollback drops the schema only if every table still has exactly that many rows and no row
version is newer than the watermark (``age(xmin) < age(watermark)``: inserts and updates make
new row versions; deletes change the count). A schema that was created but never copied into
must still be empty.
"""

from __future__ import annotations

from typing import Any

from psycopg import sql

from strangler.errors import CheckFailed
from strangler.pg.connect import connect
from strangler.pg.sync import cdc
from strangler.phases import Action
from strangler.rollbacks import RollbackRequest, register_rollback
from strangler.runbook import Runbook

__all__ = ["rollback_schema", "writes_since_copy"]


def writes_since_copy(conn: Any, schema: str, watermark: dict[str, Any] | None) -> list[str]:
    """Tables of ``schema`` that changed since the copy's watermark (all rows, if no copy)."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relnamespace = to_regnamespace(%s) "
        "AND c.relkind = 'r' ORDER BY 1",
        (schema,),
    ).fetchall()
    changed = []
    counts = (watermark or {}).get("rows", {})
    xid = (watermark or {}).get("xid")
    for (table,) in rows:
        name = sql.Identifier(schema, table)
        if xid is None:
            found = conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(name))
            if found.fetchone()[0]:
                changed.append(f"{table} holds rows, and no copy put them there")
            continue
        count, newer = conn.execute(
            sql.SQL(
                "SELECT count(*), count(*) FILTER (WHERE age(xmin) < age(%s::text::xid)) FROM {}"
            ).format(name),
            (str(int(xid) % (1 << 32)),),
        ).fetchone()
        if newer:
            changed.append(f"{table} has {newer:,} row(s) written after the copy")
        elif table in counts and count != counts[table]:
            changed.append(f"{table} has {count:,} rows, the copy left {counts[table]:,}")
        elif table not in counts and count:
            changed.append(f"{table} holds rows the copy did not put there")
    return changed


@register_rollback("schema", "drop the service schema (and its role) while nothing wrote to it")
def rollback_schema(rb: Runbook, request: RollbackRequest) -> dict[str, Any]:
    rb.check(Action.ROLLBACK_SCHEMA)
    created = rb.journal.get(rb.name, "schema/created")
    schema = rb.service.target.schema_
    if not created:
        raise CheckFailed(
            f"strangler has no record of creating schema {schema!r} for {rb.name}; it drops "
            "only what it made",
            hint="drop it by hand if you are sure it is yours",
        )
    dsn = rb.spec.target_dsn(rb.name)
    statements = [sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema))]
    role = created.get("role") if created.get("role_created") else None
    if role:
        statements.append(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
    with connect(dsn, role="service target") as conn:
        watermark = rb.journal.get(rb.name, "copy/watermark")
        # Online: until writes are cut over (the phase rules refuse this step after), the
        # write gate refuses the application's writes, so every row came from the monolith by
        # the copy or by sync; nothing would be lost.
        online = rb.service.strategy == "online"
        changed = [] if online else writes_since_copy(conn, schema, watermark)
        if changed:
            raise CheckFailed(
                f"refusing to drop schema {schema!r}: writes reached it since the copy "
                f"({'; '.join(changed)})",
                hint="the service schema holds data the monolith may not have; reconcile first "
                "(strangler verify) and roll back writes if they were cut over",
            )
        text = [s.as_string(conn) + ";" for s in statements]
        if request.dry_run:
            return {"sql": text, "dropped": False}
        with rb.step(Action.ROLLBACK_SCHEMA, reason=request.reason) as step:
            with conn.transaction():
                for s in statements:
                    conn.execute(s)
            if online:
                step.details["sync"] = cdc.end(cdc.SyncRoute.of(rb.spec, rb.name, "forward"))
            rb.journal.forget(rb.name, "copy/")
            rb.journal.forget(rb.name, "schema/")
            step.details.update(schema=schema, role_dropped=role)
    return {"sql": text, "dropped": True, "schema": schema, "role_dropped": role}
