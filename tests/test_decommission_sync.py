"""Decommission ends reverse sync (issue 15's fault campaign found its slot left behind).

After the cutover, reverse sync keeps the monolith's old tables current so that writes can
go back. Once the old path is removed (the tables archived and retired) there is no way back,
and a reverse slot left on the service's server would hold its WAL forever, with no command
left to remove it (``sync --stop`` after decommission looked for the forward slot). The step
that retires the tables must drain reverse sync into them (so the archive holds every write)
and then drop its slot, publication and stored position.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from strangler.demo.monolith import build_monolith
from strangler.journal import Journal
from tests.fix_pg import Db
from tests.fix_spec import CliResult

Cli = Callable[..., CliResult]

SPEC = """\
version: 1
state: sqlite:///state.db
source: {{ dsn: "{source}", schema: public }}
services:
  order_service:
    tables: [orders, order_items, order_status_history]
    target: {{ {target}schema: order_service }}
    strategy: online
    decommission: {{ archive_dir: archive }}
"""


def _slots(db: Db) -> list[str]:
    return [r[0] for r in db.execute("SELECT slot_name FROM pg_replication_slots ORDER BY 1")]


def _pubs(db: Db) -> list[str]:
    return [r[0] for r in db.execute("SELECT pubname FROM pg_publication ORDER BY 1")]


def test_removing_the_old_path_drains_and_ends_reverse_sync(
    cli: Cli, source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    with source_db.connect() as conn:
        build_monolith(conn, orders=30)
        conn.execute("DROP VIEW public.customer_order_totals")
    spec = tmp_path / "strangler.yaml"
    spec.write_text(SPEC.format(source=source_db.dsn, target=f'dsn: "{target_db.dsn}", '))
    done = cli("run", "order_service", "--until", "writes_cut_over", "-f", str(spec))
    assert done.code == 0, done.stdout + done.stderr
    assert _slots(target_db) == ["strangler_order_service_rev"]
    # The service takes a write that reverse sync has not applied yet.
    target_db.execute(
        "UPDATE order_service.orders SET notes = 'written by the service' WHERE id = 7"
    )
    # The traffic walk and the stable window are other tests' business: the journal is
    # brought to 'stable' as they would leave it, and the evidence decommission measures
    # when it acts (issue 13: a passing check at 100 %, quiet old tables) is set aside with
    # --force, which this step allows with a reason.
    with Journal(f"sqlite:///{tmp_path / 'state.db'}", operator="test") as journal:
        journal.outcome(journal.intent("order_service", "mark_stable"), "ok", phase="stable")
    done = cli(
        "decommission", "order_service", "--yes", "--force", "--reason", "test of the drain",
        "-f", str(spec),
    )  # fmt: skip
    assert done.code == 0, done.stdout + done.stderr
    history = cli("history", "order_service", "-f", str(spec), "-o", "json").json()
    removed = [
        e for e in history["entries"] if e["step"] == "remove_old_path" and e["status"] == "ok"
    ]
    assert removed
    assert _slots(target_db) == [] and _pubs(target_db) == [], "reverse sync ended"
    assert _slots(source_db) == []
    positions = source_db.execute("SELECT count(*) FROM _strangler.sync_position")
    assert positions == [(0,)], "no stored position is left for a slot that is gone"
    # --force went on to drop the retired tables: the archive holds what they held.
    archive = removed[-1]["details"]["archive"]["path"]
    restore = source_db.instance.bin_dir / "pg_restore"
    dumped = subprocess.run(
        [str(restore), "--data-only", "--table", "orders", "--file", "-", archive],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "written by the service" in dumped, "the old tables got every write first"
