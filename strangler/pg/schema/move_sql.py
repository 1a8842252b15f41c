"""The statements of a move (:mod:`strangler.pg.schema.move`) and of its undoing, and the
one locked transaction that runs them.

The locks are asked for with a short ``lock_timeout`` and the attempt is given up and tried
again when it expires: a lock request that waits holds up every statement queued behind it
on those tables, so a long wait would stall the monolith far longer than the move itself.
Once granted, the statements are catalog changes only and the commit follows at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from strangler.errors import CheckFailed
from strangler.pg.schema.catalog import Grant
from strangler.pg.schema.move import Moved, MovePlan, MoveResult, view_comment
from strangler.pg.schema.role import SEQUENCE_PRIVILEGES, RolePlan, role_statements
from strangler.pg.schema.statement import Statement

__all__ = ["back_statements", "holders", "lock_statement", "move_statements", "run_in_lock"]

UPDATABLE = 28  # pg_relation_is_updatable: INSERT (8) + UPDATE (4) + DELETE (16)


def _grant(grant: Grant, on: sql.Composable, *, revoke: bool = False) -> sql.Composed:
    who = sql.SQL("PUBLIC") if grant.grantee == "PUBLIC" else sql.Identifier(grant.grantee)
    # one of PostgreSQL's own privilege names, from aclexplode
    priv: sql.Composable = sql.SQL(grant.privilege)
    if grant.columns:
        priv = sql.SQL("{} ({})").format(
            priv, sql.SQL(", ").join(sql.Identifier(c) for c in grant.columns)
        )
    if revoke:
        return sql.SQL("REVOKE {} ON {} FROM {}").format(priv, on, who)
    option = sql.SQL(" WITH GRANT OPTION") if grant.grantable else sql.SQL("")
    return sql.SQL("GRANT {} ON {} TO {}{}").format(priv, on, who, option)


def lock_statement(schema: str, tables: Sequence[str]) -> Statement:
    names = sql.SQL(", ").join(sql.Identifier(schema, t) for t in tables)
    return Statement("lock", sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(names))


def _sequence_grants(plan: MovePlan, role: RolePlan) -> list[Statement]:
    privs = sql.SQL(", ").join(map(sql.SQL, SEQUENCE_PRIVILEGES))
    names = [q.name for q in plan.kept_sequences] + list(plan.shared_sequences)
    return [
        Statement(
            f"grant:{role.name}:sequence:{n}",
            sql.SQL("GRANT {} ON SEQUENCE {} TO {}").format(
                privs, sql.Identifier(plan.source_schema, n), sql.Identifier(role.name)
            ),
        )
        for n in names
    ]


def move_statements(plan: MovePlan, current_user: str) -> tuple[list[Statement], list[Statement]]:
    """``(before, locked)``: what runs before the tables are locked (schema, role) and what
    runs while they are (the move itself, views, grants), in one transaction."""
    s, t = plan.source_schema, plan.target_schema
    role = plan.role
    before = [Statement(f"schema:{t}", sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(t)))]
    grants = role_statements(t, role) if role is not None else []
    before += [st for st in grants if st.key.startswith("role:")]
    locked = [lock_statement(s, plan.tables)]
    for q in plan.kept_sequences:
        locked.append(
            Statement(
                f"sequence:{q.name}",
                sql.SQL("ALTER SEQUENCE {} OWNED BY NONE").format(sql.Identifier(s, q.name)),
            )
        )
    for r in plan.relations:
        locked.append(
            Statement(
                f"move:{r.name}",
                sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                    sql.Identifier(s, r.name), sql.Identifier(t)
                ),
                r.name,
            )
        )
    for r in plan.relations:
        view = sql.Identifier(s, r.name)
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in r.columns)
        locked.append(
            Statement(
                f"view:{r.name}",
                sql.SQL("CREATE VIEW {}{} AS SELECT {} FROM {}").format(
                    view,
                    sql.SQL(" WITH (security_invoker = true)" if r.invoker else ""),
                    cols,
                    sql.Identifier(t, r.name),
                ),
                r.name,
            )
        )
        locked.append(
            Statement(
                f"view:{r.name}:comment",
                sql.SQL("COMMENT ON VIEW {} IS {}").format(
                    view, sql.Literal(view_comment(t, r.name))
                ),
                r.name,
            )
        )
        if r.owner != current_user:
            locked.append(
                Statement(
                    f"view:{r.name}:owner",
                    sql.SQL("ALTER VIEW {} OWNER TO {}").format(view, sql.Identifier(r.owner)),
                    r.name,
                )
            )
        locked += [
            Statement(f"view:{r.name}:grant:{i}", _grant(g, view), r.name)
            for i, g in enumerate(r.grants)
        ]
    locked += [st for st in grants if not st.key.startswith("role:")]
    if role is not None:
        locked += _sequence_grants(plan, role)
    return before, locked


def back_statements(moved: Moved) -> tuple[list[Statement], list[Statement]]:
    """The move undone: ``(locked, after)``. The views go, the tables and their sequences
    return, the service role loses what the move gave it (and gets back what it had), the
    empty schema is dropped (without CASCADE: anything else in it stops the rollback)."""
    s, t = moved.source_schema, moved.target_schema
    locked = [lock_statement(t, moved.tables)]
    locked += [
        Statement(f"drop-view:{n}", sql.SQL("DROP VIEW {}").format(sql.Identifier(s, n)))
        for n in reversed(moved.tables)
    ]
    locked += [
        Statement(
            f"move-back:{n}",
            sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(sql.Identifier(t, n), sql.Identifier(s)),
            n,
        )
        for n in moved.tables
    ]
    locked += [
        Statement(
            f"sequence:{q.name}",
            sql.SQL("ALTER SEQUENCE {} OWNED BY {}").format(
                sql.Identifier(s, q.name), sql.Identifier(s, q.table, q.column)
            ),
        )
        for q in moved.kept_sequences
    ]
    after = [Statement(f"drop-schema:{t}", sql.SQL("DROP SCHEMA {}").format(sql.Identifier(t)))]
    if moved.role is None:
        return locked, after
    who = sql.Identifier(moved.role)
    locked += [
        Statement(
            f"revoke:{n}", sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(s, n), who)
        )
        for n in moved.tables
    ]
    seqs = [q.name for q in moved.kept_sequences] + list(moved.other_sequences)
    locked += [
        Statement(
            f"revoke:{n}",
            sql.SQL("REVOKE ALL ON SEQUENCE {} FROM {}").format(sql.Identifier(s, n), who),
        )
        for n in seqs
    ]
    if moved.role_created:
        after.append(Statement(f"drop-role:{moved.role}", sql.SQL("DROP ROLE {}").format(who)))
    else:
        locked += [
            Statement(f"regrant:{table}:{i}", _grant(g, sql.Identifier(s, table)))
            for i, (table, g) in enumerate(moved.role_grants)
        ]
    return locked, after


# ------------------------------------------------------------------------------------ run


def _not_updatable(conn: psycopg.Connection[Any], schema: str, names: Sequence[str]) -> list[str]:
    rows = conn.execute(
        "SELECT n, pg_relation_is_updatable(format('%%I.%%I', %s::text, n)::regclass, true) "
        "FROM unnest(%s::text[]) n",
        (schema, list(names)),
    ).fetchall()
    return [str(n) for n, bits in rows if int(bits) & UPDATABLE != UPDATABLE]


_HOLDERS = """
SELECT DISTINCT a.pid, a.usename, coalesce(nullif(a.application_name, ''), '-'), a.state,
       a.xact_start, left(a.query, 80)
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid()
  AND l.relation IN (SELECT format('%%I.%%I', %s::text, n)::regclass FROM unnest(%s::text[]) n)
ORDER BY a.xact_start
"""


def holders(conn: psycopg.Connection[Any], schema: str, tables: Sequence[str]) -> list[str]:
    """The sessions holding a lock on ``tables``, as 'pid 123 (user, app, state, transaction
    since …): query'."""
    rows = conn.execute(_HOLDERS, (schema, list(tables))).fetchall()
    return [
        f"pid {pid} ({user}, {app}, {state}, transaction since {start:%H:%M:%S}): {query}"
        for pid, user, app, state, start, query in rows
    ]


def run_in_lock(
    conn: psycopg.Connection[Any],
    before: Sequence[Statement],
    locked: Sequence[Statement],
    after: Sequence[Statement] = (),
    *,
    views: tuple[str, Sequence[str]] | None = None,
    tables: tuple[str, Sequence[str]] | None = None,
    lock_timeout: float = 0.2,
    attempts: int = 50,
    sleep: Callable[[float], None] = time.sleep,
    what: str = "the move",
) -> MoveResult:
    """Run ``before`` then ``locked`` (whose first statement takes the locks) then ``after`` in
    one transaction; a lock not granted within ``lock_timeout`` gives the attempt up (nothing
    changed) and tries again, up to ``attempts`` times, then names the sessions in the way.

    ``views``: ``(schema, names)`` of views that must be automatically updatable at the end;
    ``tables``: ``(schema, names)`` of the tables locked, to name who holds them.
    """
    started = time.monotonic()
    waited = 0.0
    timeout = sql.SQL("SET LOCAL lock_timeout = {}").format(
        sql.Literal(f"{max(1, int(lock_timeout * 1000))}ms")
    )
    for attempt in range(1, attempts + 1):
        asked = time.monotonic()
        try:
            with conn.transaction():
                conn.execute(timeout)
                for st in before:
                    conn.execute(st.query)
                asked = time.monotonic()
                conn.execute(locked[0].query)
                granted = time.monotonic()
                waited += granted - asked
                for st in locked[1:]:
                    conn.execute(st.query)
                for st in after:
                    conn.execute(st.query)
                if views is not None:
                    bad = _not_updatable(conn, *views)
                    if bad:
                        raise CheckFailed(
                            f"the compatibility views {', '.join(bad)} are not automatically "
                            "updatable; nothing was moved",
                            hint="report this: a single-table view of every column should be",
                        )
            done = time.monotonic()
            return MoveResult(attempt, waited, done - granted, done - started)
        except psycopg.errors.LockNotAvailable:
            waited += time.monotonic() - asked
            if attempt < attempts:
                sleep(min(0.1 * attempt, 2.0))
    found = holders(conn, *tables) if tables else []
    listed = "\n".join("  " + b for b in found) or "  (none visible now)"
    raise CheckFailed(
        f"{what} could not lock the tables in {attempts} attempts of {lock_timeout:g}s "
        f"(nothing changed); sessions holding locks on them:\n{listed}",
        hint="let them finish (or end them), then run the command again; --lock-timeout "
        "waits longer each attempt, at the cost of holding up the statements queued behind",
    )
