"""Pre-flight: "Database connectivity verified", with the service's own role: it logs in, it
can use (and read) its own schema, and it cannot read the monolith's other tables.

The last part is what makes the extraction real: a service that can still read ``customers``
will, sooner or later, and the boundary is gone.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from strangler.checks.base import CheckContext, CheckResult, Verdict
from strangler.pg.connect import connect, describe_dsn

__all__ = ["role_connectivity", "role_dsn"]

NAME = "database connectivity (service role)"


def role_dsn(ctx: CheckContext) -> str | None:
    """The service database's DSN with the service role's name and password in it."""
    role = ctx.svc.target.role
    if role is None:
        return None
    extra: dict[str, Any] = {"user": role.name}
    if role.password is not None:
        extra["password"] = role.password.get_secret_value()
    base = conninfo_to_dict(ctx.spec.target_dsn(ctx.service))
    for key in ("user", "password", "passfile"):
        base.pop(key, None)
    base.update(extra)
    return make_conninfo("", **{k: v for k, v in base.items() if v is not None})


def role_connectivity(ctx: CheckContext) -> CheckResult:
    svc = ctx.svc
    dsn = role_dsn(ctx)
    if dsn is None:
        return CheckResult(NAME, Verdict.SKIPPED, "no target.role in the spec to log in as")
    schema, source_schema = svc.target.schema_, ctx.spec.source.schema_
    evidence: dict[str, Any] = {"as": describe_dsn(dsn), "schema": schema}
    role = svc.target.role
    assert role is not None
    # PostgreSQL answers "password authentication failed" for a role that does not exist, so
    # ask the catalog first (as strangler's own user): preflight comes before the copy, which
    # creates the role when target.role.create is set.
    with connect(ctx.spec.target_dsn(ctx.service), role=f"{ctx.service} database") as admin:
        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role.name,)).fetchone()
    if exists is None:
        if role.create:
            return CheckResult(
                NAME,
                Verdict.WARN,
                f"role {role.name} does not exist yet; 'strangler copy {ctx.service}' creates "
                "it (target.role.create), run preflight again after to check its access",
                evidence,
                required=False,
            )
        return CheckResult(
            NAME,
            Verdict.FAIL,
            f"role {role.name} does not exist and target.role.create is false",
            evidence,
        )
    conn = connect(dsn, role=f"{ctx.service} database as its own role")
    with conn:
        usage = conn.execute(
            "SELECT has_schema_privilege(current_user, n.oid, 'USAGE') "
            "FROM pg_namespace n WHERE n.nspname = %s",
            (schema,),
        ).fetchone()
        if usage is None:
            return CheckResult(
                NAME,
                Verdict.FAIL,
                f"schema {schema} does not exist yet; create it with 'strangler copy "
                f"{ctx.service} --schema-only' and run preflight again",
                evidence,
            )
        if not usage[0]:
            return CheckResult(
                NAME, Verdict.FAIL, f"role cannot use schema {schema} (no USAGE)", evidence
            )
        own = _tables(conn, schema)
        read = []
        for table in own:
            denied = _denied(conn, schema, table)
            if denied:
                return CheckResult(
                    NAME, Verdict.FAIL, f"role cannot read {schema}.{table}: {denied}", evidence
                )
            read.append(table)
        evidence["read"] = read
        # Every table of the monolith's schema, the old copies of its own tables included:
        # the service reads only its own schema from now on.
        others = _tables(conn, source_schema)
        readable = [t for t in others if not _denied(conn, source_schema, t)]
        evidence["monolith_tables_checked"] = others
        if readable:
            names = ", ".join(f"{source_schema}.{t}" for t in readable)
            return CheckResult(
                NAME,
                Verdict.FAIL,
                f"role can read the monolith's tables {names}; revoke its access to keep the "
                "boundary",
                evidence,
            )
    return CheckResult(
        NAME,
        Verdict.PASS,
        f"logs in, uses schema {schema} ({len(read)} tables read), cannot read the "
        f"monolith's {len(others)} tables",
        evidence,
    )


def _tables(conn: psycopg.Connection[Any], schema: str) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY 1",
        (schema,),
    ).fetchall()
    return [r[0] for r in rows]


def _denied(conn: psycopg.Connection[Any], schema: str, table: str) -> str | None:
    """None when the role can SELECT from the table, else the server's reason."""
    query = sql.SQL("SELECT 1 FROM {} LIMIT 0").format(sql.Identifier(schema, table))
    try:
        conn.execute(query)
    except psycopg.errors.InsufficientPrivilege as exc:
        return str(exc.diag.message_primary or exc)
    return None
