"""Bad input, counted (issue 15): spec mistakes and server states strangler must refuse.

Every case runs the command line against real servers and asserts the three things an
operator relies on: a clear message naming the problem (and the fix, where there is one), the
exit code of its kind (2 bad input, 3 unreachable, 1 a check failed), and **nothing changed**:
a snapshot of both databases' catalogs (and the cluster's roles) and of the journal, taken
before and after, are equal. The ``cli`` fixture fails a test on any traceback. Mistakes on
the command line itself are walked by ``tests/test_cli_errors.py``; hostile names in every
position a name can take are fuzzed by ``tests/test_hostile_names.py``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from strangler.demo.monolith import build_monolith
from strangler.pg.embedded import PgInstance
from tests import snapshots
from tests.fix_pg import Db
from tests.fix_spec import CliResult

Cli = Callable[..., CliResult]

ROLE_PASSWORD = "svc-bad-input-" + uuid.uuid4().hex[:8]
GOOD_TABLES = "[orders, order_items]"

BASE = """\
version: 1
state: {state}
source: {{ dsn: "{source}", schema: {source_schema} }}
services:
  {service}:
    tables: {tables}
    target: {{ {target}schema: {schema}, role: {{ name: {role}, password: "${{SVC_PW}}" }} }}
    strategy: {strategy}
{extra}"""


@dataclass(frozen=True)
class Case:
    """One bad input: how the spec (or the servers) differ from a good run, and what to see.

    ``spec``: overrides of :data:`BASE`'s fields; ``prepare``: what to do to the servers first
    (by name, see :func:`_prepare`); ``text``: what the error must say (every item)."""

    id: str
    code: int
    text: tuple[str, ...]
    spec: dict[str, str] | None = None
    args: tuple[str, ...] = ("copy", "order_service")
    prepare: str = ""
    raw: str | None = None  # the spec file's whole text, when it is not BASE


OTHER_SERVICE = """\
  other_service:
    tables: [orders]
    target: { schema: other }
    strategy: copy
"""

TRAFFIC = """\
    traffic:
      route: /api/v1/orders*
      router: {router}
{more}"""

NO_NAME = "PostgreSQL names cannot"

SPEC_CASES = [
    Case("yaml-syntax", 2, ("not valid YAML",), raw="version: 1\nservices: [\n"),
    Case("unknown-top-level-key", 2, ("colour",), spec={"extra": "colour: blue\n"}),
    Case("unknown-service-key", 2, ("tabels",), spec={"extra": "    tabels: [orders]\n"}),
    Case("wrong-version", 2, ("version",), raw="version: 2\nsource: {dsn: x}\nservices: {}\n"),
    Case("service-name-upper-case", 2, ("lower-case",), spec={"service": "OrderService"}),
    Case("service-name-with-dash", 2, ("lower-case",), spec={"service": "order-service"}),
    Case("no-tables", 2, ("tables",), spec={"tables": "[]"}),
    # A NUL is the one character PostgreSQL refuses in a name (issue 12 lets the others in).
    Case("table-name-with-nul", 2, (NO_NAME,), spec={"tables": '["ord\\0ers"]'}),
    Case("table-name-too-long", 2, ("63",), spec={"tables": "[" + "t" * 64 + "]"}),
    Case("schema-name-too-long", 2, ("63",), spec={"schema": "s" * 64}),
    Case("schema-name-with-nul", 2, (NO_NAME,), spec={"schema": '"svc\\0"'}),
    Case("source-schema-with-nul", 2, (NO_NAME,), spec={"source_schema": '"pub\\0lic"'}),
    Case("role-name-with-nul", 2, (NO_NAME,), spec={"role": '"r\\0le"'}),
    Case("role-name-too-long", 2, ("63",), spec={"role": "r" * 64}),
    Case("unknown-strategy", 2, ("strategy",), spec={"strategy": "live"}),
    Case(
        "sync-section-with-copy-strategy",
        2,
        ("strategy: online",),
        spec={"extra": "    sync: { max_lag: 1MB }\n"},
    ),
    Case(
        "snapshot-age-with-move-strategy",
        2,
        ("copy.max_snapshot_age applies to strategy: copy or online", "copies nothing"),
        spec={"strategy": "move", "extra": "    copy: { max_snapshot_age: 1h }\n"},
    ),
    Case(
        "snapshot-age-with-a-shared-decoder",
        2,
        ("copy.max_snapshot_age with sync.decoder", "--join"),
        spec={
            "strategy": "online",
            "extra": "    copy: { max_snapshot_age: 1h }\n    sync: { decoder: billing }\n",
        },
    ),
    Case(
        "snapshot-age-with-chunk-workers-online",
        2,
        ("copy.max_snapshot_age with copy.engine: workers", "engine: builtin"),
        spec={
            "strategy": "online",
            "extra": "    copy: { max_snapshot_age: 1h, engine: workers }\n",
        },
    ),
    Case(
        "bad-size",
        2,
        ("is not a size",),
        spec={"strategy": "online", "extra": "    sync: { max_lag: lots }\n"},
    ),
    Case("bad-duration", 2, ("soon",), spec={"extra": "    decommission: { stable_for: soon }\n"}),
    Case("missing-environment-variable", 2, ("NOPE_NOT_SET",), spec={"source": "${NOPE_NOT_SET}"}),
    Case(
        "unknown-router-kind",
        2,
        ("nginx", "valid kinds"),
        spec={"extra": TRAFFIC.format(router="{ kind: nginx }", more="")},
    ),
    Case(
        "router-missing-option",
        2,
        ("socket",),
        spec={"extra": TRAFFIC.format(router="{ kind: haproxy, backend: b }", more="")},
    ),
    Case(
        "unknown-metrics-kind",
        2,
        ("datadog",),
        spec={
            "extra": TRAFFIC.format(
                router="{ kind: local, admin_url: 'http://127.0.0.1:9' }",
                more="      metrics: { kind: datadog }\n",
            )
        },
    ),
    Case(
        "traffic-step-over-100",
        2,
        ("at most 100",),
        spec={
            "extra": TRAFFIC.format(
                router="{ kind: local, admin_url: 'http://127.0.0.1:9' }",
                more="      steps: [50, 150]\n",
            )
        },
    ),
    Case(
        "unknown-gate-metric",
        2,
        ("metric", "error_rate"),
        spec={
            "extra": TRAFFIC.format(
                router="{ kind: local, admin_url: 'http://127.0.0.1:9' }",
                more="      gates: [{ metric: happiness, max: 1 }]\n",
            )
        },
    ),
    Case(
        "journal-url-scheme",
        2,
        ("state:", "sqlite:///"),
        spec={"state": "mysql://localhost/journal"},
    ),
    Case(
        "dsn-not-a-connection-string",
        2,
        ("not a valid libpq connection string",),
        spec={"source": "host=127.0.0.1 port= = dbname"},
    ),
    Case("duplicate-table", 2, ("orders",), spec={"tables": "[orders, orders]"}),
    # Found by this suite: both were taken, and both services would gate, cut over and
    # retire the same monolith table.
    Case(
        "same-table-in-two-services",
        2,
        ("'orders' is moved by services order_service and other_service",),
        spec={"extra": OTHER_SERVICE},
    ),
    Case(
        "two-services-one-target-schema",
        2,
        ("share one target schema",),
        spec={
            "extra": OTHER_SERVICE.replace("[orders]", "[customers]").replace(
                "other }", 'order_service, dsn: "{dsn}" }'
            )
        },
        prepare="same-target",
    ),
    Case(
        "table-not-in-the-monolith", 2, ("has no table 'nope'",), spec={"tables": "[orders, nope]"}
    ),
    Case(
        "view-instead-of-a-table",
        2,
        ("customer_order_totals",),
        spec={"tables": "[customer_order_totals]"},
    ),
    Case("schema-not-in-the-monolith", 2, ("nowhere",), spec={"source_schema": "nowhere"}),
    Case("target-is-the-monolith-schema", 2, ("public",), spec={"target": "", "schema": "public"}),
]

SERVER_CASES = [
    Case(
        "unreachable-host",
        3,
        ("could not be reached", "127.0.0.1:9"),
        spec={"source": "postgresql://app:pw-unreach-1@127.0.0.1:9/db?connect_timeout=2"},
    ),
    Case("wrong-password", 3, ("refused the credentials",), prepare="wrong-password"),
    Case("missing-database", 3, ("no such database",), prepare="missing-database"),
    Case("missing-role", 3, ("nobody_at_all",), prepare="missing-role"),
    # Found by this suite: the copy created the service schema, then failed on the first
    # table it could not read, saying "could not import the requested snapshot".
    Case(
        "missing-select-privilege",
        1,
        ("cannot read public.orders", "GRANT SELECT ON"),
        prepare="no-select",
    ),
    Case(
        "target-holds-another-schema",
        2,
        ("already has a schema", "order_service"),
        prepare="foreign-schema",
    ),
    # Found by this suite: the schema and role were created before the slot failed on it.
    Case(
        "no-logical-wal",
        1,
        ("wal_level = replica", "ALTER SYSTEM SET wal_level = logical"),
        spec={"strategy": "online"},
        prepare="replica-wal",
    ),
    Case(
        "online-table-without-key",
        1,
        ("REPLICA IDENTITY",),
        spec={"strategy": "online"},
        prepare="no-primary-key",
    ),
    # Found by this suite: the first write to a read-only journal reached the command line's
    # last resort as a foreign exception.
    Case("read-only-journal", 1, ("the journal at", "read-only"), prepare="read-only-journal"),
    Case(
        "read-only-journal-file",
        2,
        ("cannot open the journal", "writable"),
        prepare="read-only-journal-file",
    ),
    Case(
        "role-missing-and-not-to-be-created",
        2,
        ("ghost_role", "create"),
        spec={"role": "ghost_role"},
        prepare="role-create-false",
    ),
]


@pytest.fixture(scope="module")
def replica_server(pg_root: Path) -> object:
    """A server whose wal_level is replica: logical decoding is impossible on it."""
    inst = PgInstance.create(
        pg_root / "replica-wal", settings={"wal_level": "replica", "fsync": "off"}
    ).start()
    try:
        yield inst
    finally:
        inst.destroy()


def _spec_text(case: Case, source: Db, target: Db, tmp: Path) -> str:
    if case.raw is not None:
        return case.raw
    fields = {
        "state": "sqlite:///state.db",
        "source": source.dsn,
        "source_schema": "public",
        "service": "order_service",
        "tables": GOOD_TABLES,
        "target": f'dsn: "{target.dsn}", ',
        "schema": "order_service",
        "role": "svc_bad_input",
        "strategy": "copy",
        "extra": "",
    }
    fields.update(case.spec or {})
    return BASE.format(**fields)


def _prepare(
    case: Case,
    source: Db,
    target: Db,
    spec: Path,
    replica: PgInstance,
    cleanups: list[Callable[[], object]],
) -> None:
    text = spec.read_text()
    what = case.prepare
    if what == "wrong-password":
        text = text.replace(source.instance.password, "wrong-pw-" + uuid.uuid4().hex[:6])
    elif what == "missing-database":
        text = text.replace(f"/{source.name}", "/no_such_database_here")
    elif what == "missing-role":
        text = text.replace("postgres:", "nobody_at_all:", 1)
    elif what == "no-select":
        role = "ro_" + uuid.uuid4().hex[:8]
        source.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
            .format(sql.Identifier(role), sql.Literal(ROLE_PASSWORD))
            .as_string(None)
        )
        source.execute(
            sql.SQL("GRANT USAGE ON SCHEMA public TO {}")
            .format(sql.Identifier(role))
            .as_string(None)
        )
        source.execute(
            sql.SQL("GRANT SELECT ON public.order_items TO {}")
            .format(sql.Identifier(role))
            .as_string(None)
        )
        text = text.replace(
            source.dsn, source.instance.dsn(source.name, user=role, password=ROLE_PASSWORD)
        )
    elif what == "foreign-schema":
        target.execute("CREATE SCHEMA order_service")
        target.execute("CREATE TABLE order_service.payments (id int PRIMARY KEY)")
    elif what == "replica-wal":
        name = "d_" + uuid.uuid4().hex[:8]
        replica.create_database(name)
        with psycopg.connect(replica.dsn(name), autocommit=True) as conn:
            build_monolith(conn, orders=20)
        text = text.replace(source.dsn, replica.dsn(name))
    elif what == "no-primary-key":
        source.execute("ALTER TABLE public.order_items DROP CONSTRAINT order_items_pkey")
    elif what == "read-only-journal-file":
        from strangler.journal import Journal
        from tests.faults.mounts import Tmpfs, can_mount

        why = can_mount(spec.parent)
        if why:
            pytest.skip(why)
        disk = Tmpfs(spec.parent / "ro", 4)
        cleanups.append(disk.unmount)
        Journal(f"sqlite:///{disk.path / 'state.db'}").close()
        disk.read_only()
        text = text.replace("sqlite:///state.db", f"sqlite:///{disk.path / 'state.db'}")
    elif what == "read-only-journal":
        journal = "ro_" + uuid.uuid4().hex[:8]
        target.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
            .format(sql.Identifier(journal), sql.Literal(ROLE_PASSWORD))
            .as_string(None)
        )
        target.execute(
            sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on")
            .format(sql.Identifier(journal))
            .as_string(None)
        )
        url = target.instance.dsn(target.name, user=journal, password=ROLE_PASSWORD)
        text = text.replace("sqlite:///state.db", url)
    elif what == "same-target":
        text = text.replace("{dsn}", target.dsn)
    elif what == "role-create-false":
        text = text.replace('password: "${SVC_PW}" }', 'password: "${SVC_PW}", create: false }')
    spec.write_text(text)


def _snapshot(source: Db, target: Db, spec: Path) -> dict[str, object]:
    return {
        "source": snapshots.catalog(source),
        "target": snapshots.catalog(target),
        # Opening a journal creates its empty tables; an empty journal is no journal.
        "journal": snapshots.journal(spec.parent / "state.db", empty_is_none=True),
    }


@pytest.mark.parametrize("case", SPEC_CASES + SERVER_CASES, ids=lambda c: c.id)
def test_bad_input_is_refused_clearly_and_changes_nothing(
    cli: Cli,
    source_db: Db,
    target_db: Db,
    tmp_path: Path,
    case: Case,
    replica_server: PgInstance,
    request: pytest.FixtureRequest,
) -> None:
    with source_db.connect() as conn:
        build_monolith(conn, orders=20)
    spec = tmp_path / "strangler.yaml"
    spec.write_text(_spec_text(case, source_db, target_db, tmp_path))
    cleanups: list[Callable[[], object]] = []
    request.addfinalizer(lambda: [c() for c in cleanups])
    _prepare(case, source_db, target_db, spec, replica_server, cleanups)
    before = _snapshot(source_db, target_db, spec)
    env = {"SVC_PW": ROLE_PASSWORD}
    # One run per case (the command line is slow to start): spec mistakes as a person reads
    # them, server states as a machine does (--output json), alternately.
    as_json = case in SERVER_CASES
    done = cli(*case.args, "-f", str(spec), *(["-o", "json"] if as_json else []), env=env)
    assert done.code == case.code, done.stdout + done.stderr
    said = done.stderr
    if as_json:
        error = json.loads(done.stdout)
        assert error["exit_code"] == case.code, error
        said = f"{error['message']}\n{error['hint']}"
    for text in case.text:
        assert text in said, (text, said)
    for secret in (ROLE_PASSWORD, source_db.instance.password, target_db.instance.password):
        assert secret not in done.stdout + done.stderr
    assert _snapshot(source_db, target_db, spec) == before, "a refused command changes nothing"


def test_the_suite_counts_at_least_fifty_bad_inputs() -> None:
    from tests.test_cli_errors import BAD_ARGUMENTS
    from tests.test_hostile_names import POSITIONS

    total = len(SPEC_CASES) + len(SERVER_CASES) + len(BAD_ARGUMENTS) + len(POSITIONS)
    assert total >= 50, total
