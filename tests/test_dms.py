"""``copy.engine: dms`` (issue 17): strangler's own table mappings, checked by its own schema
of DMS's rules and applied to a real copy; the control plane against moto's server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest

from strangler.dms.control import TableStat
from strangler.dms.rules import apply_rules, check_mappings, table_mappings
from strangler.errors import BadInput, CheckFailed, SpecError
from strangler.pg.copy.rows import Endpoints, copy_tables
from strangler.phases import Phase
from strangler.spec import parse_spec_text
from strangler.steps import dms as dms_step
from strangler.steps.copy import copy as copy_service
from strangler.steps.verify import verify as verify_step
from tests.extract_world import build_rich, rows_of, runbook, write_service_spec
from tests.fix_pg import Db

TABLES = ["orders", "Order Items", "price_bands"]


def test_the_rules_select_exactly_the_spec_tables_and_rename_the_schema() -> None:
    doc = table_mappings("public", TABLES, "order_service")
    placed = apply_rules(
        check_mappings(json.dumps(doc)),
        {"public": ["orders", "Order Items", "price_bands", "customers", "orders_archive"],
         "other": ["orders"]},
    )  # fmt: skip
    assert [(p.source_table, p.target_schema, p.target_table) for p in placed] == [
        ("orders", "order_service", "orders"),
        ("Order Items", "order_service", "Order Items"),
        ("price_bands", "order_service", "price_bands"),
    ]


def test_wildcards_excludes_and_transformations_follow_dms() -> None:
    rules = check_mappings(
        {"rules": [
            {"rule-type": "selection", "rule-id": "1", "rule-name": "all",
             "object-locator": {"schema-name": "public", "table-name": "order%"},
             "rule-action": "include"},
            {"rule-type": "selection", "rule-id": "2", "rule-name": "not-archive",
             "object-locator": {"schema-name": "public", "table-name": "%archive"},
             "rule-action": "exclude"},
            {"rule-type": "transformation", "rule-id": "3", "rule-name": "lower",
             "rule-target": "table", "object-locator": {"schema-name": "%", "table-name": "%"},
             "rule-action": "convert-lowercase"},
        ]}
    )  # fmt: skip
    placed = apply_rules(rules, {"public": ["orders", "orderItems", "orders_archive", "x"]})
    assert [(p.source_table, p.target_schema, p.target_table) for p in placed] == [
        ("orders", "public", "orders"),
        ("orderItems", "public", "orderitems"),
    ]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"rules": []}, "no selection rule includes a table"),
        ({"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "a",
                     "object-locator": {"schema-name": "s", "table-name": "t"},
                     "rule-actoin": "include"}]}, "rule-actoin"),
        ({"rules": [{"rule-type": "selection", "rule-id": "1", "rule-name": "a",
                     "object-locator": {"schema-name": "s", "table-name": "t"},
                     "rule-action": "include"},
                    {"rule-type": "transformation", "rule-id": "1", "rule-name": "b",
                     "rule-target": "schema", "object-locator": {"schema-name": "s"},
                     "rule-action": "rename"}]}, "rename needs a value"),
    ],
)  # fmt: skip
def test_strangler_refuses_rules_moto_would_store(doc: Any, message: str) -> None:
    with pytest.raises(CheckFailed, match=message):
        check_mappings(doc)


def test_a_name_dms_cannot_select_exactly_is_refused() -> None:
    with pytest.raises(BadInput, match="cannot be selected exactly"):
        table_mappings("public", ["100%_done"], "svc")


def test_dms_cannot_serve_an_online_service() -> None:
    with pytest.raises(SpecError, match="engine: dms cannot serve strategy: online"):
        parse_spec_text(
            "version: 1\nsource: {dsn: x}\nservices:\n  a:\n    tables: [t]\n"
            "    target: {schema: a, dsn: y}\n    strategy: online\n"
            "    copy: {engine: dms, dms: {replication_instance: ri}}\n"
        )


class LocalDms:
    """DMS's data plane, which moto lacks: when asked for progress the first time, it reads
    the task's table mappings from moto, applies them to the monolith's tables with
    strangler's own engine, and reports each table as DMS does."""

    def __init__(self, client: Any, source: Db, target: Db) -> None:
        self.client, self.source, self.target = client, source, target
        self.loaded: dict[tuple[str, str], int] = {}
        self.task: dict[str, Any] = {}

    def tables(self, task_arn: str) -> list[TableStat]:
        if not self.loaded:
            (task,) = self.client.describe_replication_tasks(
                Filters=[{"Name": "replication-task-arn", "Values": [task_arn]}]
            )["ReplicationTasks"]
            self.task = task
            names = [r[0] for r in self.source.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace "
                "AND relkind = 'r'")]  # fmt: skip
            placed = apply_rules(check_mappings(task["TableMappings"]), {"public": names})
            with psycopg.connect(self.source.dsn, autocommit=True) as conn:
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
                snap = str(conn.execute("SELECT pg_export_snapshot()").fetchone()[0])  # type: ignore[index]
                for p in placed:
                    ends = Endpoints(self.source.dsn, p.source_schema, self.target.dsn,
                                     p.target_schema)  # fmt: skip
                    rows = copy_tables(ends, [p.source_table], snapshot=snap)
                    self.loaded[(p.source_schema, p.source_table)] = rows[p.source_table]
                conn.execute("COMMIT")
        return [TableStat(s, t, "Table completed", n) for (s, t), n in self.loaded.items()]


def test_a_full_load_through_dms_then_keys_indexes_sequences_and_verify(
    source_db: Db, target_db: Db, tmp_path: Path, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_rich(source_db.dsn, n=800)
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn, tables=TABLES)
    spec.write_text(
        spec.read_text()
        + "    copy:\n      engine: dms\n"
        + "      dms: { replication_instance: strangler-ri, poll: 0.05s,"
        + f" endpoint_url: {aws_env} }}\n"
    )
    dms = boto3.client("dms", region_name="us-east-1", endpoint_url=aws_env)
    local = LocalDms(dms, source_db, target_db)
    monkeypatch.setattr(dms_step, "table_progress", lambda _client: local)
    _, journal, rb = runbook(spec)
    result = copy_service(rb, jobs=2)
    assert rb.phase == Phase.COPIED
    assert result.figures is not None and not result.figures.mismatched
    assert result.figures.formats == ["dms"]
    # the task was strangler's: DO_NOTHING into its tables, its own rules
    settings = json.loads(local.task["ReplicationTaskSettings"])
    assert settings["FullLoadSettings"]["TargetTablePrepMode"] == "DO_NOTHING"
    assert local.task["MigrationType"] == "full-load"
    # control plane: instance created and kept; task and endpoints removed afterwards
    inst = dms.describe_replication_instances()["ReplicationInstances"]
    assert [i["ReplicationInstanceIdentifier"] for i in inst] == ["strangler-ri"]
    assert dms.describe_replication_tasks()["ReplicationTasks"] == []
    assert dms.describe_endpoints()["Endpoints"] == []
    # what DMS skips, strangler built: keys, indexes, sequences
    keys = target_db.execute(
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        "WHERE c.relnamespace = 'order_service'::regnamespace AND i.indisprimary"
    )
    assert keys == [(3,)]
    nextval = target_db.execute("SELECT nextval('order_service.\"Order Items_id_seq\"')")
    assert nextval[0][0] > 1600
    for t in TABLES:
        assert rows_of(target_db.dsn, "order_service", t) == rows_of(source_db.dsn, "public", t)
    report = verify_step(rb)
    assert report.passed
    history = json.dumps([e.to_dict() for e in journal.history("order_service")], default=str)
    password = psycopg.conninfo.conninfo_to_dict(target_db.dsn)["password"]
    assert password not in history
    journal.close()


def test_the_plan_refuses_a_table_dms_cannot_select_before_any_row_moves() -> None:
    from strangler.steps.copy import plan
    from strangler.steps.types import Subject

    spec = parse_spec_text(
        "version: 1\nsource: {dsn: x}\nservices:\n  a:\n    tables: [orders, '50%_off']\n"
        "    target: {schema: a, dsn: y}\n"
        "    copy: {engine: dms, dms: {replication_instance: ri}}\n"
    )
    with pytest.raises(BadInput, match="cannot be selected exactly"):
        plan(Subject(spec, "a"))
    ok = parse_spec_text(
        "version: 1\nsource: {dsn: x}\nservices:\n  a:\n    tables: [orders]\n"
        "    target: {schema: a, dsn: y}\n"
        "    copy: {engine: dms, dms: {replication_instance: ri}}\n"
    )
    assert "AWS DMS full-load task" in plan(Subject(ok, "a")).operations[0].what
