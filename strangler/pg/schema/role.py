"""The service's login role, as the runbook's step 1 makes it, with least privilege.

``USAGE`` on its own schema, ``SELECT, INSERT, UPDATE, DELETE`` on its tables and the use of
its sequences, the same by default for objects created there later, and nothing else: no
``TRUNCATE``, no DDL, no right on any of the monolith's tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from strangler.pg.schema.statement import Statement

__all__ = ["SEQUENCE_PRIVILEGES", "TABLE_PRIVILEGES", "RolePlan", "role_statements"]

TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")


@dataclass(frozen=True)
class RolePlan:
    """The service role of runbook step 1. ``exists``: found on the target already."""

    name: str
    password: str | None
    create: bool
    exists: bool
    # schemas after the service's on the role's search_path: where the extensions the moved
    # tables use live, so carried trigger functions find their objects at run time
    search_path: tuple[str, ...] = ()


def role_statements(t: str, role: RolePlan) -> list[Statement]:
    r = sql.Identifier(role.name)
    s = sql.Identifier(t)
    out = []
    if role.create and not role.exists:
        secret = role.password
        create = sql.SQL("CREATE ROLE {} LOGIN{}").format(
            r, sql.SQL(" PASSWORD {}").format(sql.Literal(secret)) if secret else sql.SQL("")
        )
        shown = sql.SQL("CREATE ROLE {} LOGIN{}").format(
            r, sql.SQL(" PASSWORD '***'") if secret else sql.SQL("")
        )
        out.append(Statement(f"role:{role.name}", create, shown=shown))
        out.append(
            Statement(
                f"role:{role.name}:search_path",
                sql.SQL("ALTER ROLE {} SET search_path TO {}").format(
                    r,
                    sql.SQL(", ").join(
                        map(sql.Identifier, [t, *(x for x in role.search_path if x != t)])
                    ),
                ),
            )
        )
    tables = sql.SQL(", ").join(map(sql.SQL, TABLE_PRIVILEGES))
    seqs = sql.SQL(", ").join(map(sql.SQL, SEQUENCE_PRIVILEGES))
    for key, stmt in (
        ("usage", sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, r)),
        ("tables", sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA {} TO {}").format(tables, s, r)),
        ("sequences", sql.SQL("GRANT {} ON ALL SEQUENCES IN SCHEMA {} TO {}").format(seqs, s, r)),
        (
            "default:tables",
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT {} ON TABLES TO {}").format(
                s, tables, r
            ),
        ),
        (
            "default:sequences",
            sql.SQL("ALTER DEFAULT PRIVILEGES IN SCHEMA {} GRANT {} ON SEQUENCES TO {}").format(
                s, seqs, r
            ),
        ),
    ):
        out.append(Statement(f"grant:{role.name}:{key}", stmt))
    return out
