"""What the code the service will run reads, writes and calls: the boundary inside function bodies.

A trigger function carried to the service (or a monolith function that a moved table's default,
CHECK, generated column or index calls, or a trigger of another schema runs) may name tables
that stay behind. On the service such a name fails at run time ("relation does not exist"), and
the first INSERT after the cutover is how one finds out. :func:`body_references` reads each
such function and says, for each relation or function its body names, how sure it is:

- ``certain``: PostgreSQL recorded the dependency (``pg_depend``): SQL-standard bodies
  (``BEGIN ATOMIC … END`` or ``RETURN …``), whose references are resolved when created;
- ``parsed``: PostgreSQL's own parser (libpg_query, through pglast) found it in a statement
  of a PL/pgSQL or SQL body; a body is parsed, never run;
- ``possible``: a name found in text only: the SQL a body builds at run time (``EXECUTE``),
  or a body in a language strangler cannot parse (then every known name found is listed).

Names are resolved as the function would resolve them: qualified as written, unqualified
through the function's own ``SET search_path`` when it has one, else the source schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

__all__ = [
    "BodyRef",
    "FunctionBody",
    "Relations",
    "body_references",
    "known_objects",
    "read_bodies",
]

_SYSTEM = ("pg_catalog", "information_schema")
_WRITES = ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")


@dataclass(frozen=True)
class FunctionBody:
    oid: int
    schema: str
    name: str
    language: str
    source: str  # prosrc; empty for a SQL-standard body
    sql_standard: bool
    definition: str  # pg_get_functiondef: what the PL/pgSQL parser reads
    search_path: tuple[str, ...]  # its own SET search_path, if any

    @property
    def label(self) -> str:
        return f"{self.schema}.{self.name}()"


@dataclass(frozen=True)
class BodyRef:
    """One thing a body names: a relation it reads or writes, or a function it calls."""

    verb: str  # reads | writes | calls
    schema: str
    name: str
    certainty: str  # certain | parsed | possible
    qualified: bool  # written with its schema (or bound to it by PostgreSQL)


@dataclass(frozen=True)
class Relations:
    """The monolith's relations and functions by schema, for resolving names in bodies."""

    relations: frozenset[tuple[str, str]]
    functions: frozenset[tuple[str, str]]

    def resolve(self, name: str, path: Sequence[str], *, function: bool = False) -> str | None:
        """The schema ``name`` resolves to on ``path`` (pg_catalog first, as PostgreSQL does)."""
        known = self.functions if function else self.relations
        for schema in ("pg_catalog", *path):
            if (schema, name) in known:
                return schema
        return None


_BODIES = """
SELECT p.oid, n.nspname, p.proname, l.lanname, coalesce(p.prosrc, '') AS prosrc,
       p.prosqlbody IS NOT NULL AS sql_standard,
       CASE WHEN l.lanname IN ('plpgsql', 'sql') THEN pg_get_functiondef(p.oid) END AS def,
       (SELECT substr(c, 13) FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%%') AS path
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE p.oid = ANY(%(oids)s)
ORDER BY 2, 3
"""

# Relations and functions by name; an extension's own objects are not the monolith's (the
# extension check reports them), so they are left out and never resolve.
_KNOWN = """
SELECT n.nspname, c.relname, 'r' FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT LIKE 'pg_toast%%'
  AND n.nspname NOT LIKE 'pg_temp%%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass
                  AND e.objid = c.oid AND e.deptype = 'e')
UNION
SELECT n.nspname, p.proname, 'f' FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'pg_catalog' OR NOT EXISTS (
    SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass
    AND e.objid = p.oid AND e.deptype = 'e')
"""

# What PostgreSQL recorded of a SQL-standard body: the relations and functions it uses.
_RECORDED = """
SELECT DISTINCT d.refclassid = 'pg_proc'::regclass AS is_function, n.nspname,
       coalesce(c.relname, p.proname) AS name
FROM pg_depend d
LEFT JOIN pg_class c ON d.refclassid = 'pg_class'::regclass AND c.oid = d.refobjid
LEFT JOIN pg_proc p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid
JOIN pg_namespace n ON n.oid = coalesce(c.relnamespace, p.pronamespace)
WHERE d.classid = 'pg_proc'::regclass AND d.objid = %(oid)s AND d.deptype = 'n'
  AND d.refclassid IN ('pg_class'::regclass, 'pg_proc'::regclass)
  AND (c.relkind IS NULL OR c.relkind IN ('r', 'p', 'v', 'm', 'f'))
ORDER BY 2, 3
"""


def read_bodies(conn: psycopg.Connection[Any], oids: Sequence[int]) -> list[FunctionBody]:
    """The bodies of the functions ``oids``, with what the parser needs."""
    if not oids:
        return []
    out = []
    for oid, nsp, name, lang, src, standard, definition, path in conn.execute(
        _BODIES, {"oids": list(oids)}
    ).fetchall():
        schemas = tuple(s.strip().strip('"') for s in (path or "").split(",") if s.strip())
        out.append(FunctionBody(oid, nsp, name, lang, src, standard, definition or "", schemas))
    return out


def known_objects(conn: psycopg.Connection[Any]) -> Relations:
    rels: set[tuple[str, str]] = set()
    fns: set[tuple[str, str]] = set()
    for nsp, name, kind in conn.execute(_KNOWN).fetchall():
        (fns if kind == "f" else rels).add((nsp, name))
    return Relations(frozenset(rels), frozenset(fns))


def body_references(
    conn: psycopg.Connection[Any], fn: FunctionBody, known: Relations, source_schema: str
) -> list[BodyRef]:
    """What ``fn``'s body reads, writes and calls (system objects left out), resolved."""
    path = fn.search_path or (source_schema,)
    if fn.sql_standard:
        return [
            BodyRef("calls" if is_fn else "reads", nsp, name, "certain", True)
            for is_fn, nsp, name in conn.execute(_RECORDED, {"oid": fn.oid}).fetchall()
            if nsp not in _SYSTEM
        ]
    found: list[tuple[str, str | None, str, str]] = []  # verb, schema, name, certainty
    parsed = _parse(fn, found)
    if not parsed:  # a language or a body the parser cannot read: names in the text
        found += _words(fn.source)
    out: dict[tuple[str, str, str, bool], BodyRef] = {}
    for verb, schema, name, certainty in found:
        function = verb == "calls"
        where = schema or known.resolve(name, path, function=function)
        if where is None or where in _SYSTEM:
            continue
        if not function and (where, name) not in known.relations:
            continue
        key = (verb, where, name, schema is not None)
        if key not in out or out[key].certainty == "possible":
            out[key] = BodyRef(verb, where, name, certainty, schema is not None)
    return sorted(out.values(), key=lambda r: (r.schema, r.name, r.verb, r.qualified))


def _parse(fn: FunctionBody, found: list[tuple[str, str | None, str, str]]) -> bool:
    """Fill ``found`` from the parsed body; False when the body cannot be parsed."""
    from pglast import parse_plpgsql
    from pglast.parser import ParseError, parse_sql_json

    try:
        if fn.language == "plpgsql":
            tree = parse_plpgsql(fn.definition)
            for query, mode, dynamic in _plpgsql_exprs(tree):
                text = query if mode == 0 else "SELECT " + _assigned(query, mode)
                try:
                    stmts = json.loads(parse_sql_json(text))
                except ParseError:
                    found += [(v, s, n, "possible") for v, s, n, _ in _words(query)]
                    continue
                if dynamic:
                    for literal in _strings(stmts):
                        found += [(v, s, n, "possible") for v, s, n, _ in _words(literal)]
                else:
                    found += [(v, s, n, "parsed") for v, s, n in _refs(stmts)]
            return True
        if fn.language == "sql":
            found += [
                (v, s, n, "parsed") for v, s, n in _refs(json.loads(parse_sql_json(fn.source)))
            ]
            return True
    except ParseError:
        return False
    return False


def _assigned(query: str, mode: int) -> str:
    """An assignment's expression (``x := expr`` is parsed as the expression alone)."""
    if mode >= 3:
        m = re.match(r"\s*[\w.\"\[\]]+\s*:?=\s*", query)
        if m:
            return query[m.end() :]
    return query


def _plpgsql_exprs(node: Any, dynamic: bool = False) -> Iterator[tuple[str, int, bool]]:
    """Every SQL expression of a PL/pgSQL parse tree: (text, parse mode, built at run time)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "PLpgSQL_expr" and isinstance(value, dict):
                yield value.get("query", ""), int(value.get("parseMode", 0)), dynamic
                continue
            dyn = (
                dynamic
                or key in ("PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors")
                or (key == "dynquery")
            )
            yield from _plpgsql_exprs(value, dyn)
    elif isinstance(node, list):
        for item in node:
            yield from _plpgsql_exprs(item, dynamic)


def _refs(tree: Any) -> list[tuple[str, str | None, str]]:
    """Relations read or written, and functions called, in a parsed SQL tree."""
    ctes = set(_values(tree, "ctename"))
    out: list[tuple[str, str | None, str]] = []

    def walk(node: Any, verb: str) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, verb)
            return
        if not isinstance(node, dict):
            return
        if "relname" in node:
            schema = node.get("schemaname")
            if schema or node["relname"] not in ctes:
                out.append((verb, schema, node["relname"]))
            return
        for key, value in node.items():
            if key == "FuncCall" and isinstance(value, dict):
                names = [n["String"]["sval"] for n in value.get("funcname", []) if "String" in n]
                if names:
                    out.append(("calls", names[-2] if len(names) > 1 else None, names[-1]))
            if key in _WRITES and isinstance(value, dict):
                walk(value.get("relation"), "writes")
                walk({k: v for k, v in value.items() if k != "relation"}, "reads")
            elif key == "TruncateStmt" and isinstance(value, dict):
                walk(value.get("relations"), "writes")
            else:
                walk(value, verb)

    walk(tree, "reads")
    return out


def _values(node: Any, key: str) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key and isinstance(v, str):
                yield v
            else:
                yield from _values(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from _values(item, key)


def _strings(tree: Any) -> list[str]:
    """String constants of a parsed expression (the SQL text a body builds at run time)."""
    out = []
    for const in _nodes(tree, "A_Const"):
        sval = const.get("sval")
        if isinstance(sval, dict) and isinstance(sval.get("sval"), str):
            out.append(sval["sval"])
    return out


def _nodes(node: Any, kind: str) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == kind and isinstance(v, dict):
                yield v
            yield from _nodes(v, kind)
    elif isinstance(node, list):
        for item in node:
            yield from _nodes(item, kind)


_WORD = re.compile(
    r'(?:"((?:[^"]|"")+)"|([A-Za-z_][\w$]*))(?:\s*\.\s*(?:"((?:[^"]|"")+)"|([A-Za-z_][\w$]*)))?'
)


def _words(text: str) -> list[tuple[str, str | None, str, str]]:
    """Every identifier (or schema.identifier) in ``text``, as possible reads."""
    out: list[tuple[str, str | None, str, str]] = []
    for m in _WORD.finditer(text):
        first = m.group(1).replace('""', '"') if m.group(1) else (m.group(2) or "").lower()
        second = m.group(3).replace('""', '"') if m.group(3) else (m.group(4) or "").lower()
        if second:
            out.append(("reads", first, second, "possible"))
        else:
            out.append(("reads", None, first, "possible"))
    return out
