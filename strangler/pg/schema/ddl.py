"""Render a :class:`~strangler.pg.schema.catalog.Catalog` as DDL for the service's schema.

The DDL comes in phases because a fast copy loads rows into bare tables and builds keys
afterwards (runbook steps 1 and 3, in the order that is quick and safe):

1. ``schema``  one transaction: schema, types, sequences, trigger functions, tables with
   columns, defaults, identity, generated columns and valid CHECKs, comments, and the
   service role with least-privilege grants (runbook step 1);
2. ``keys``    primary keys, unique and exclusion constraints, indexes (run in parallel);
3. ``fks``     foreign keys added NOT VALID (instant), then
4. ``validate`` VALIDATE CONSTRAINT, which scans without blocking writes (in parallel);
5. ``finish``  triggers (after the load, so they do not fire on copied rows), NOT VALID
   CHECKs, replica identity, comments on constraints and indexes, the monolith's grants;
6. ``analyze`` planner statistics, so the service's first queries are not planned blind.

Names are always :class:`psycopg.sql.Identifier`. Definitions the server deparsed for us
(types, defaults, expressions, index and trigger definitions) are inserted as
:class:`psycopg.sql.SQL`: they come from pg_catalog, not from the operator, and are read with
the source schema as the only ``search_path`` so that they resolve in the target schema when
run with the target as the only ``search_path`` (see :mod:`strangler.pg.schema.catalog`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from strangler.pg.schema.catalog import Catalog, Column, Constraint, ForeignKey, Table
from strangler.pg.schema.ddl_tables import (
    inherited_defaults,
    inherited_not_nulls,
    parents_first,
    row_security,
)
from strangler.pg.schema.ddl_types import collate, type_statements
from strangler.pg.schema.role import RolePlan, role_statements
from strangler.pg.schema.statement import Query, Statement, search_path

__all__ = ["Ddl", "RolePlan", "Statement", "render_ddl", "search_path", "to_lines", "to_text"]

_ACTIONS = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
_MATCH = {"f": "MATCH FULL", "p": "MATCH PARTIAL", "s": ""}
_TRIGGER_STATE = {
    "D": "DISABLE TRIGGER",
    "R": "ENABLE REPLICA TRIGGER",
    "A": "ENABLE ALWAYS TRIGGER",
}
_VOLATILITY = {"i": "IMMUTABLE", "s": "STABLE", "v": "VOLATILE"}


@dataclass
class Ddl:
    schema: list[Statement] = field(default_factory=list)
    keys: list[Statement] = field(default_factory=list)
    fks: list[Statement] = field(default_factory=list)
    validate: list[Statement] = field(default_factory=list)
    finish: list[Statement] = field(default_factory=list)
    analyze: list[Statement] = field(default_factory=list)
    # schemas after the service's on the search_path the DDL runs under: where the
    # extensions the moved tables use live on the target (pg/schema/extensions.py)
    path: tuple[str, ...] = ()

    def phases(self) -> list[tuple[str, list[Statement]]]:
        return [
            ("schema", self.schema),
            ("keys", self.keys),
            ("fks", self.fks),
            ("validate", self.validate),
            ("finish", self.finish),
            ("analyze", self.analyze),
        ]


def to_text(ddl: Ddl, target: str, context: Any = None, *, schema: bool = True) -> str:
    """The exact SQL ``--dry-run`` prints: what :mod:`strangler.pg.copy.extract` runs, in order.

    ``schema=False`` leaves out the first phase (the schema exists already).
    """
    return "\n".join(to_lines(ddl, target, context, schema=schema)) + "\n"


def to_lines(ddl: Ddl, target: str, context: Any = None, *, schema: bool = True) -> list[str]:
    """:func:`to_text`, one statement (or comment) a line."""
    out: list[str] = []
    if schema:
        out = ["BEGIN;", search_path(target, local=True, then=ddl.path).as_string(context) + ";"]
        out += [(s.shown or s.query).as_string(context) + ";" for s in ddl.schema]
        out.append("COMMIT;")
    out.append(f"-- rows are copied here; then, one transaction per statement ({target}):")
    out.append(search_path(target, local=False, then=ddl.path).as_string(context) + ";")
    for _name, stmts in ddl.phases()[1:]:
        out += [(s.shown or s.query).as_string(context) + ";" for s in stmts]
    return out


def _column(t: str, table: Table, col: Column, catalog: Catalog) -> sql.Composable:
    parts: list[sql.Composable] = [sql.Identifier(col.name), sql.SQL(" " + col.type_sql)]
    parts.append(collate(col.collation))
    if col.generated:
        kind = "STORED" if col.generated == "s" else "VIRTUAL"
        parts.append(sql.SQL(f" GENERATED ALWAYS AS ({col.generation_expr}) {kind}"))
    elif col.identity:
        seq = next(
            s
            for s in catalog.sequences
            if s.identity and s.owner_table == table.name and s.owner_column == col.name
        )
        parts.append(
            sql.SQL(
                " GENERATED {} AS IDENTITY (SEQUENCE NAME {} START WITH {} INCREMENT BY {} "
                "MINVALUE {} MAXVALUE {} CACHE {} {})"
            ).format(
                sql.SQL("ALWAYS" if col.identity == "a" else "BY DEFAULT"),
                sql.Identifier(t, seq.name),
                sql.Literal(seq.start),
                sql.Literal(seq.increment),
                sql.Literal(seq.minimum),
                sql.Literal(seq.maximum),
                sql.Literal(seq.cache),
                sql.SQL("CYCLE" if seq.cycle else "NO CYCLE"),
            )
        )
    elif col.default is not None:
        parts.append(sql.SQL(" DEFAULT " + col.default))
    if col.not_null and col.not_null_name:  # PostgreSQL 18 names it; keep the name
        parts.append(sql.SQL(" CONSTRAINT {} NOT NULL").format(sql.Identifier(col.not_null_name)))
    elif col.not_null:
        parts.append(sql.SQL(" NOT NULL"))
    return sql.Composed(parts)


def _create_table(t: str, table: Table, catalog: Catalog) -> Query:
    name = sql.Identifier(t, table.name)
    unlogged = sql.SQL("UNLOGGED " if table.unlogged else "")
    checks: list[sql.Composable] = [
        sql.SQL("CONSTRAINT {} {}").format(sql.Identifier(c.name), sql.SQL(c.definition))
        for c in table.constraints
        if c.kind == "c" and c.validated and not c.inherited
    ]
    options: Query = sql.SQL("")
    if table.options:
        options = sql.SQL(" WITH ({})").format(sql.SQL(", ").join(map(sql.SQL, table.options)))
    if table.partition_of:
        body: list[sql.Composable] = checks + inherited_not_nulls(table, catalog)
        inner = sql.SQL(" ({})").format(sql.SQL(", ").join(body)) if body else sql.SQL("")
        # A partition may be partitioned in turn (sub-partitions).
        sub = sql.SQL(" PARTITION BY " + table.partition_key if table.partition_key else "")
        return sql.SQL("CREATE {}TABLE {} PARTITION OF {}{} {}{}{}").format(
            unlogged,
            name,
            sql.Identifier(t, table.partition_of),
            inner,
            sql.SQL(table.partition_bound or ""),
            sub,
            options,
        )
    # An inheritance child lists only its own columns; the rest come from INHERITS.
    own = [c for c in table.columns if not (table.inherits and c.inherited)]
    cols = [_column(t, table, c, catalog) for c in own]
    if table.inherits:
        checks += inherited_not_nulls(table, catalog)
    partition: Query = sql.SQL("")
    if table.partition_key:
        partition = sql.SQL(" PARTITION BY " + table.partition_key)
    if table.inherits:
        partition = sql.SQL(" INHERITS ({})").format(
            sql.SQL(", ").join(sql.Identifier(t, p) for p in table.inherits)
        )
    return sql.SQL("CREATE {}TABLE {} ({}){}{}").format(
        unlogged, name, sql.SQL(", ").join(cols + checks), partition, options
    )


def _foreign_key(t: str, fk: ForeignKey, ref_schema: str, partitioned: bool) -> Statement:
    parts: list[sql.Composable] = [
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})").format(
            sql.Identifier(t, fk.table),
            sql.Identifier(fk.name),
            sql.SQL(", ").join(map(sql.Identifier, fk.columns)),
            sql.Identifier(ref_schema, fk.ref_table),
            sql.SQL(", ").join(map(sql.Identifier, fk.ref_columns)),
        )
    ]
    if _MATCH[fk.match]:
        parts.append(sql.SQL(" " + _MATCH[fk.match]))
    parts.append(sql.SQL(f" ON UPDATE {_ACTIONS[fk.on_update]} ON DELETE {_ACTIONS[fk.on_delete]}"))
    if fk.deferrable:
        parts.append(sql.SQL(" DEFERRABLE INITIALLY DEFERRED" if fk.deferred else " DEFERRABLE"))
    # PostgreSQL before 18 cannot add a NOT VALID foreign key to a partitioned table.
    if not partitioned:
        parts.append(sql.SQL(" NOT VALID"))
    return Statement(f"fk:{fk.table}:{fk.name}", sql.Composed(parts), fk.table)


def render_ddl(
    catalog: Catalog,
    target: str,
    *,
    role: RolePlan | None = None,
    leaving: str = "drop",
    existing_roles: frozenset[str] = frozenset(),
) -> Ddl:
    """The DDL that recreates ``catalog`` in schema ``target``.

    ``leaving`` says what happens to foreign keys that point at tables staying in the
    monolith: ``drop`` leaves them out, ``keep`` (same instance only) recreates them pointing
    at the monolith's schema. Grants to roles missing from ``existing_roles`` are left out.
    """
    t = target
    ddl = Ddl()
    ddl.schema.append(Statement("schema", sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(t))))
    ddl.schema += type_statements(t, catalog)
    for seq in catalog.sequences:
        if seq.identity:
            continue
        ddl.schema.append(
            Statement(
                f"sequence:{seq.name}",
                sql.SQL(
                    "CREATE SEQUENCE {} AS {} START WITH {} INCREMENT BY {} MINVALUE {} "
                    "MAXVALUE {} CACHE {} {}"
                ).format(
                    sql.Identifier(t, seq.name),
                    sql.SQL(seq.type_sql),
                    sql.Literal(seq.start),
                    sql.Literal(seq.increment),
                    sql.Literal(seq.minimum),
                    sql.Literal(seq.maximum),
                    sql.Literal(seq.cache),
                    sql.SQL("CYCLE" if seq.cycle else "NO CYCLE"),
                ),
            )
        )
    for fn in catalog.trigger_functions:
        ddl.schema.append(
            Statement(
                f"function:{fn.name}",
                sql.SQL("CREATE FUNCTION {}() RETURNS trigger LANGUAGE {}{} {} AS {}").format(
                    sql.Identifier(t, fn.name),
                    sql.Identifier(fn.language),
                    sql.SQL(" SECURITY DEFINER" if fn.security_definer else ""),
                    sql.SQL(_VOLATILITY[fn.volatility]),
                    sql.Literal(fn.body),
                ),
            )
        )
    moved = set(catalog.names)
    for table in parents_first(catalog):
        tn = sql.Identifier(t, table.name)
        ddl.schema.append(
            Statement(f"table:{table.name}", _create_table(t, table, catalog), table.name)
        )
        ddl.schema += inherited_defaults(t, table, catalog)
        if table.comment is not None:
            ddl.schema.append(
                Statement(
                    f"comment:{table.name}",
                    sql.SQL("COMMENT ON TABLE {} IS {}").format(tn, sql.Literal(table.comment)),
                    table.name,
                )
            )
        for col in table.columns:
            if col.comment is not None:
                ddl.schema.append(
                    Statement(
                        f"comment:{table.name}.{col.name}",
                        sql.SQL("COMMENT ON COLUMN {} IS {}").format(
                            sql.Identifier(t, table.name, col.name), sql.Literal(col.comment)
                        ),
                        table.name,
                    )
                )
        for con in table.constraints:
            if con.inherited:
                continue
            add = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                tn, sql.Identifier(con.name), sql.SQL(con.definition)
            )
            if con.kind in ("p", "u") and table.kind == "r" and con.index_definition:
                # Built as a plain unique index (in parallel with the table's other indexes,
                # as pgcopydb does), then attached: the ALTER is a catalog change.
                ddl.keys += _key_by_index(table.name, tn, con)
            elif con.kind in ("p", "u", "x"):
                ddl.keys.append(Statement(f"constraint:{table.name}:{con.name}", add, table.name))
            elif con.kind == "c" and not con.validated:
                ddl.finish.append(Statement(f"check:{table.name}:{con.name}", add, table.name))
            if con.comment is not None:
                ddl.finish.append(_constraint_comment(table.name, tn, con.name, con.comment))
        for idx in table.indexes:
            if idx.inherited:
                continue
            ddl.keys.append(
                Statement(f"index:{table.name}:{idx.name}", sql.SQL(idx.definition), table.name)
            )
            if idx.comment is not None:
                ddl.finish.append(
                    Statement(
                        f"comment:index:{idx.name}",
                        sql.SQL("COMMENT ON INDEX {} IS {}").format(
                            sql.Identifier(t, idx.name), sql.Literal(idx.comment)
                        ),
                        table.name,
                    )
                )
        for fk in table.foreign_keys:
            if fk.inherited:
                continue
            inside = fk.ref_schema == catalog.schema and fk.ref_table in moved
            if not inside and leaving != "keep":
                continue
            stmt = _foreign_key(t, fk, t if inside else fk.ref_schema, table.kind == "p")
            ddl.fks.append(stmt)
            if fk.validated and table.kind != "p":
                ddl.validate.append(
                    Statement(
                        f"validate:{table.name}:{fk.name}",
                        sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(
                            tn, sql.Identifier(fk.name)
                        ),
                        table.name,
                    )
                )
            if fk.comment is not None:
                ddl.finish.append(_constraint_comment(table.name, tn, fk.name, fk.comment))
        for trg in table.triggers:
            ddl.finish.append(
                Statement(f"trigger:{table.name}:{trg.name}", sql.SQL(trg.definition), table.name)
            )
            if trg.enabled in _TRIGGER_STATE:
                ddl.finish.append(
                    Statement(
                        f"trigger:{table.name}:{trg.name}:state",
                        sql.SQL("ALTER TABLE {} {} {}").format(
                            tn, sql.SQL(_TRIGGER_STATE[trg.enabled]), sql.Identifier(trg.name)
                        ),
                        table.name,
                    )
                )
        ddl.finish += row_security(t, table, existing_roles)
        identity: Query | None = {"f": sql.SQL("FULL"), "n": sql.SQL("NOTHING")}.get(
            table.replica_identity
        )
        if table.replica_identity == "i" and table.replica_index:
            identity = sql.SQL("USING INDEX {}").format(sql.Identifier(table.replica_index))
        if identity is not None:
            ddl.finish.append(
                Statement(
                    f"replica_identity:{table.name}",
                    sql.SQL("ALTER TABLE {} REPLICA IDENTITY {}").format(tn, identity),
                    table.name,
                )
            )
        for g in table.grants:
            if g.grantee != "PUBLIC" and g.grantee not in existing_roles:
                continue
            cols: Query = sql.SQL("")
            if g.columns:  # a column privilege: GRANT SELECT (a, b) ON …
                cols = sql.SQL(" ({})").format(sql.SQL(", ").join(map(sql.Identifier, g.columns)))
            ddl.finish.append(
                Statement(
                    f"grant:{table.name}:{g.grantee}:{g.privilege}"
                    + (f"({','.join(g.columns)})" if g.columns else ""),
                    sql.SQL("GRANT {}{} ON {} TO {}{}").format(
                        sql.SQL(g.privilege),
                        cols,
                        tn,
                        sql.SQL("PUBLIC") if g.grantee == "PUBLIC" else sql.Identifier(g.grantee),
                        sql.SQL(" WITH GRANT OPTION" if g.grantable else ""),
                    ),
                    table.name,
                )
            )
    for table in catalog.tables:
        if table.has_data or table.partition_key:
            ddl.analyze.append(
                Statement(
                    f"analyze:{table.name}",
                    sql.SQL("ANALYZE {}").format(sql.Identifier(t, table.name)),
                    table.name,
                )
            )
    for seq in catalog.sequences:
        if seq.owner_table and not seq.identity:
            ddl.schema.append(
                Statement(
                    f"sequence:{seq.name}:owned_by",
                    sql.SQL("ALTER SEQUENCE {} OWNED BY {}").format(
                        sql.Identifier(t, seq.name),
                        sql.Identifier(t, seq.owner_table, seq.owner_column or ""),
                    ),
                )
            )
    if role is not None:
        ddl.schema += role_statements(t, role)
    return ddl


def _constraint_comment(table: str, tn: sql.Composable, name: str, comment: str) -> Statement:
    """COMMENT ON CONSTRAINT, for keys, checks and foreign keys alike."""
    return Statement(
        f"comment:{table}:{name}",
        sql.SQL("COMMENT ON CONSTRAINT {} ON {} IS {}").format(
            sql.Identifier(name), tn, sql.Literal(comment)
        ),
        table,
    )


def _key_by_index(table: str, tn: sql.Composable, con: Constraint) -> list[Statement]:
    """PRIMARY KEY / UNIQUE as CREATE UNIQUE INDEX plus ADD CONSTRAINT … USING INDEX."""
    assert con.index_definition and con.index_name
    kind = "PRIMARY KEY" if con.kind == "p" else "UNIQUE"
    timing = ""
    if con.deferrable:
        timing = " DEFERRABLE INITIALLY " + ("DEFERRED" if con.deferred else "IMMEDIATE")
    attach = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {} USING INDEX {}{}").format(
        tn,
        sql.Identifier(con.name),
        sql.SQL(kind),
        sql.Identifier(con.index_name),
        sql.SQL(timing),
    )
    return [
        Statement(f"index:{table}:{con.index_name}", sql.SQL(con.index_definition), table),
        Statement(f"constraint:{table}:{con.name}", attach, table),
    ]
