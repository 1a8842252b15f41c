"""Issue 13 on the database side, through the real CLI against real PostgreSQL: a step
refused by its evidence changes nothing (catalog and journal compared before and after);
mistakes are not evidence; a verification made obsolete is not shown as one; strangler's
own machinery is not part of the monolith's boundary; stopping the reverse sync and rolling
writes back each check what they stand on, now."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from strangler.journal import Journal
from strangler.pg.sync import cdc
from tests.cdc_world import make_shop, route
from tests.extract_world import build_rich, write_service_spec
from tests.fix_pg import Db
from tests.fix_spec import CliResult

Cli = Callable[..., CliResult]


def _journal(spec: Path) -> list[dict[str, Any]]:
    db = spec.parent / "state.db"
    if not db.exists():
        return []
    with Journal(f"sqlite:///{db}") as journal:
        return [e.to_dict() for e in journal.history()]


def _catalog(db: Db) -> dict[str, Any]:
    """What a copy could create on the target: schemas, roles, tables, slots."""
    return {
        "schemas": db.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg_%' "
            "AND nspname <> 'information_schema' ORDER BY 1"
        ),
        "roles": db.execute(
            "SELECT rolname FROM pg_roles WHERE rolname NOT LIKE 'pg_%' ORDER BY 1"
        ),
        "tables": db.execute(
            "SELECT relnamespace::regnamespace::text, relname FROM pg_class WHERE relkind = 'r' "
            "AND relnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema') "
            "ORDER BY 1, 2"
        ),
        "slots": db.execute("SELECT slot_name FROM pg_replication_slots ORDER BY 1"),
    }


@pytest.mark.parametrize("how", [["copy"], ["copy", "--schema-only"]])
def test_a_copy_refused_by_its_preflight_changes_nothing(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Cli, how: list[str]
) -> None:
    build_rich(source_db.dsn, n=5)
    spec, role = write_service_spec(tmp_path, source_db.dsn, target_db.dsn)
    spec.write_text(
        spec.read_text() + "    preflight: { attestations: [oncall], rehearsal_spec: dev.yaml }\n"
    )
    # The rollback was rehearsed (a dev journal shows one); nobody attested on-call yet.
    (tmp_path / "dev.yaml").write_text(spec.read_text().replace("state.db", "dev.db"))
    with Journal(f"sqlite:///{tmp_path / 'dev.db'}") as dev:
        dev.outcome(dev.intent("order_service", "rollback_traffic"), "ok")
    assert cli("preflight", "order_service", "-f", str(spec)).code == 1
    before = (_catalog(target_db), _catalog(source_db), _journal(spec))

    refused = cli(*how, "order_service", "-f", str(spec))
    assert refused.code == 1, refused.stderr
    assert "the last preflight of order_service" in refused.stderr
    assert "failed: attested: oncall" in refused.stderr
    # Not the schema, not the role, not a journal entry: the gate came before all of it.
    assert (_catalog(target_db), _catalog(source_db), _journal(spec)) == before
    assert role not in str(before[0]["roles"])

    assert cli("attest", "order_service", "oncall", "--note", "paged", "-f", str(spec)).code == 0
    assert cli("preflight", "order_service", "-f", str(spec)).code == 0
    done = cli(*how, "order_service", "-f", str(spec))
    assert done.code == 0, done.stderr
    created = next(
        e for e in _journal(spec) if e["kind"] == "intent" and e["step"] == "create_schema"
    )
    # The intent names the preflight it was checked against, and how fresh it had to be.
    checked = created["details"]["evidence"]["recent_preflight"]
    preflights = [e for e in _journal(spec) if e["step"] == "preflight" and e["status"] == "pass"]
    assert checked["preflight"] == preflights[-1]["id"]
    assert checked["fresh"].startswith("younger than preflight.max_age")


def test_a_wrong_password_is_no_verification_and_status_stays_honest(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Cli
) -> None:
    build_rich(source_db.dsn, n=5)
    spec, _ = write_service_spec(tmp_path, source_db.dsn, target_db.dsn)
    assert cli("copy", "order_service", "-f", str(spec)).code == 0
    assert cli("verify", "order_service", "-f", str(spec)).code == 0
    before = _journal(spec)

    text = spec.read_text()
    wrong = target_db.instance.dsn(target_db.name, password="not-the-password")
    spec.write_text(text.replace(json.dumps(target_db.dsn), json.dumps(wrong)))
    failed = cli("verify", "order_service", "-f", str(spec))
    assert failed.code == 3, failed.stderr
    assert "not-the-password" not in failed.stdout + failed.stderr
    assert _journal(spec) == before, "a connection error is not a verification result"
    spec.write_text(text)
    status = cli("status", "-f", str(spec), "-o", "json").json()["services"][0]
    assert status["last_verification"]["status"] == "passed"

    # A typo is not evidence either (refused before the journal since issue 11).
    typo = cli("verify", "order_service", "-f", str(spec), "--table", "ordrs")
    assert typo.code == 2 and _journal(spec) == before


def test_a_schema_rollback_makes_the_verification_obsolete(
    source_db: Db, tmp_path: Path, cli: Cli
) -> None:
    build_rich(source_db.dsn, n=5)
    spec, _ = write_service_spec(tmp_path, source_db.dsn, None)
    assert cli("copy", "order_service", "-f", str(spec)).code == 0
    assert cli("verify", "order_service", "-f", str(spec)).code == 0
    back = cli(
        "rollback", "order_service", "--schema", "--reason", "redo", "--yes", "-f", str(spec)
    )
    assert back.code == 0, back.stderr
    status = cli("status", "-f", str(spec), "-o", "json").json()["services"][0]
    seen = status["last_verification"]
    assert (seen["status"], seen["was"], seen["obsoleted_by"]) == (
        "obsolete",
        "passed",
        "rollback_schema",
    )
    text = cli("status", "-f", str(spec))
    assert "obsolete" in text.stdout and "passed" not in text.stdout
    intent = next(
        e for e in _journal(spec) if e["kind"] == "intent" and e["step"] == "rollback_schema"
    )
    # What the drop stood on, measured inside its lock: the copy's watermark, no change since.
    assert intent["details"]["evidence"]["no_writes_since_copy"]["changed"] == []


SHOP = """\
version: 1
state: sqlite:///state.db
source: {{ dsn: "{source}", schema: public }}
services:
  shop:
    tables: [orders, items]
    target: {{ dsn: "{target}", schema: svc }}
    strategy: online
"""


def test_after_cutover_the_plan_the_reverse_stop_and_the_writes_rollback_check_now(
    source_db: Db, target_db: Db, tmp_path: Path, cli: Cli
) -> None:
    make_shop(source_db, None, rows=50)
    spec = tmp_path / "strangler.yaml"
    spec.write_text(SHOP.format(source=source_db.dsn, target=target_db.dsn))
    f = ["-f", str(spec)]
    try:
        for step in (["copy"], ["sync", "--until-caught-up"], ["verify"], ["cutover"]):
            done = cli(step[0], "shop", *step[1:], *f)
            assert done.code == 0, (step, done.stderr)

        # strangler's own write gate on the old tables is not a reference to carry.
        plan = cli("plan", "shop", *f, "-o", "json")
        assert plan.code == 0, plan.stderr
        (service,) = plan.json()["services"]
        refs = service["boundary"]["references"]
        assert not [r for r in refs if "_strangler" in r["from"] + r["to"]], refs

        # Stopping the reverse sync now would remove the way back: refused, nothing dropped.
        before = _journal(spec)
        refused = cli("sync", "shop", "--stop", "--yes", *f)
        assert refused.code == 1, refused.stderr
        assert "stopping reverse sync now removes the way back" in refused.stderr
        assert source_db.execute("SELECT count(*) FROM pg_replication_slots") == [(0,)]
        assert target_db.execute("SELECT slot_name FROM pg_replication_slots") == [
            ("strangler_shop_rev",)
        ]
        assert _journal(spec) == before
        forced = cli("sync", "shop", "--stop", "--yes", "--force", "--reason", "the way back", *f)
        assert forced.code == 0, forced.stderr
        assert target_db.execute("SELECT count(*) FROM pg_replication_slots") == [(0,)]

        # Without the reverse slot, writes cannot go back without losing the service's.
        target_db.execute("INSERT INTO svc.orders (customer) VALUES ('only in the service')")
        before = _journal(spec)
        back = cli("rollback", "shop", "--writes", "--reason", "undo", *f)
        assert back.code == 1, back.stderr
        assert "reverse sync slot 'strangler_shop_rev' does not exist" in back.stderr
        assert _journal(spec) == before
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="cut over"):
            source_db.execute("INSERT INTO public.orders (customer) VALUES ('refused')")
        assert target_db.execute("SELECT count(*) FROM pg_replication_slots") == [(0,)]
    finally:
        cdc.end(route(source_db, target_db))
        cdc.end(route(source_db, target_db, "reverse"))
