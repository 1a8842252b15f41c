"""The boundary inside code: what the functions the service will run reach on the monolith.

The service runs three kinds of monolith code: the trigger functions carried with the moved
tables' triggers (recreated in the service schema), and, on the same instance, functions of
other schemas that a moved table's trigger, default, CHECK, generated column or index calls in
place. Each body is read (:mod:`strangler.pg.schema.code`); a table it reads or writes that stays
behind, an old table it names by its schema, or a monolith function it calls that is not
carried, is a finding that **breaks** the service at run time, so ``copy`` refuses before any
row moves unless the spec says ``code: {reaches_behind: accept}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from strangler.pg.own import OWN_SCHEMAS
from strangler.pg.schema.boundary_types import Reference
from strangler.pg.schema.catalog import Catalog
from strangler.pg.schema.code import (
    BodyRef,
    FunctionBody,
    Relations,
    body_references,
    known_objects,
    read_bodies,
)

__all__ = ["ExpressionCall", "code_findings"]

# (table, what: default | check | generated column | index, function oid)
ExpressionCall = tuple[str, str, int]

_TRIGGER_FUNCTIONS = """
SELECT DISTINCT t.tgfoid FROM pg_trigger t
JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE t.tgrelid = ANY(%(oids)s) AND NOT t.tgisinternal
  AND NOT EXISTS (SELECT 1 FROM pg_trigger pt WHERE pt.oid = t.tgparentid)
  -- strangler's own write gate and write guard are not the monolith's code
  AND n.nspname <> ALL(%(own)s)
"""


def code_findings(
    conn: psycopg.Connection[Any],
    catalog: Catalog,
    *,
    same_instance: bool,
    accept: bool,
    expression_calls: Sequence[ExpressionCall] = (),
) -> list[Reference]:
    """Findings for the trigger functions of the moved tables and for the functions of other
    schemas their expressions call in place (``expression_calls``, same instance only)."""
    oids = [t.oid for t in catalog.tables]
    query = {"oids": oids, "own": list(OWN_SCHEMAS)}
    tfns = [r[0] for r in conn.execute(_TRIGGER_FUNCTIONS, query).fetchall()]
    if not tfns and not expression_calls:
        return []
    known = known_objects(conn)
    judge = _Judge(catalog, same_instance, known, "accepted" if accept else "breaks")
    out: list[Reference] = []
    for fn in read_bodies(conn, tfns):
        tables = ", ".join(
            sorted({t.name for t in catalog.tables for g in t.triggers if g.function == fn.name
                    and g.function_schema == fn.schema})
        )  # fmt: skip
        carried = fn.schema == catalog.schema
        if not carried and not same_instance:
            out.append(
                Reference(
                    "trigger", f"{tables} → {fn.label}", fn.label,
                    f"the trigger runs a function of schema {fn.schema}, which strangler does "
                    "not carry: the target does not have it", "cannot carry",
                )
            )  # fmt: skip
            continue
        found = judge.all(conn, fn, carried=carried)
        kind = "trigger function" if carried else "trigger"
        if carried and not found:
            out.append(
                Reference(kind, fn.label, tables, "recreated in the service schema with its "
                          "trigger; its body names nothing that stays behind", "carried",
                          "parsed")
            )  # fmt: skip
        elif not found:
            out.append(
                Reference(kind, f"{tables} → {fn.label}", fn.label, "the service's trigger "
                          "calls the monolith's function in place (same instance); its body "
                          "names nothing that stays behind", "kept", "parsed")
            )  # fmt: skip
        for ref, why in found:
            out.append(
                Reference(kind, f"{fn.label} (trigger of {tables})", _target(ref), why,
                          judge.action, ref.certainty)
            )  # fmt: skip
    bodies = {fn.oid: fn for fn in read_bodies(conn, sorted({c[2] for c in expression_calls}))}
    for table, what, oid in expression_calls:
        fn = bodies[oid]
        for ref, why in judge.all(conn, fn, carried=False):
            out.append(
                Reference("expression", f"{table} {what} → {fn.label}", _target(ref), why,
                          judge.action, ref.certainty)
            )  # fmt: skip
    return out


def _target(ref: BodyRef) -> str:
    return f"{ref.schema}.{ref.name}" + ("()" if ref.verb == "calls" else "")


class _Judge:
    """What each thing a body names means on the service."""

    def __init__(
        self, catalog: Catalog, same_instance: bool, known: Relations, action: str
    ) -> None:
        self.schema = catalog.schema
        self.moved = set(catalog.names)
        self.carried = {f.name for f in catalog.trigger_functions} | {
            f.name for f in catalog.type_functions
        }
        self.same_instance = same_instance
        self.known = known
        self.action = action

    def all(
        self, conn: psycopg.Connection[Any], fn: FunctionBody, *, carried: bool
    ) -> list[tuple[BodyRef, str]]:
        out = []
        for ref in body_references(conn, fn, self.known, self.schema):
            why = self.why(ref, carried=carried)
            if why is not None:
                out.append((ref, why))
        return out

    def why(self, ref: BodyRef, *, carried: bool) -> str | None:
        if ref.verb == "calls":
            if not carried:
                return None  # it runs in the monolith's namespace, where its callees are
            if ref.schema == self.schema and ref.name not in self.carried:
                return (
                    f"calls {ref.schema}.{ref.name}(), a monolith function strangler does not "
                    "carry: on the service it does not exist"
                )
            if ref.schema != self.schema and not self.same_instance:
                return (
                    f"calls {ref.schema}.{ref.name}(), which lives in schema {ref.schema}: the "
                    "target does not have it"
                )
            return None
        if ref.schema == self.schema and ref.name in self.moved:
            if not ref.qualified:
                return None  # resolves to the service's own table
            return (
                f"{ref.verb} {ref.schema}.{ref.name} by its schema: on the service that is the "
                + (
                    "monolith's old table (stale after the write cutover)"
                    if self.same_instance
                    else "monolith's table, which the target does not have"
                )
            )
        where = (
            "on the service the name does not resolve ('relation does not exist')"
            if not ref.qualified and carried
            else "the service role may not use it, and it goes with the monolith"
            if self.same_instance
            else "the target does not have it ('relation does not exist')"
        )
        return f"{ref.verb} {ref.schema}.{ref.name}, which stays behind: {where}"
