"""Decommission against a real PostgreSQL: it refuses at each unmet condition and, when all
hold, archives (restorably), retires and, a later run after the grace period, drops."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console

from strangler.checks.base import Verdict
from strangler.demo.act_decommission import act_decommission
from strangler.demo.world import DemoOptions, demo_world
from strangler.errors import CheckFailed, StranglerError
from strangler.pg.copy import retire as T
from strangler.phases import Action, Phase
from strangler.steps import archives
from strangler.steps.decommission import decommission as run_decommission
from strangler.steps.decommission import gather
from strangler.steps.facts import traffic_timeline
from strangler.steps.preflight import attest
from strangler.steps.records import ArchiveRecord
from strangler.steps.runbook import Runbook
from tests.checks_helpers import Clock, make_rb, spec_text
from tests.crash_points import commit_fails, outcome_of
from tests.fix_pg import Db

MONOLITH = """
CREATE TABLE public.customers (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE public.orders (id int PRIMARY KEY, customer_id int NOT NULL
    REFERENCES public.customers (id), total numeric(10, 2) NOT NULL);
CREATE TABLE public.order_items (id int PRIMARY KEY, order_id int NOT NULL
    REFERENCES public.orders (id), sku text NOT NULL);
INSERT INTO public.customers SELECT g, 'c' || g FROM generate_series(1, 5) g;
INSERT INTO public.orders SELECT g, 1 + g % 5, g * 1.5 FROM generate_series(1, 50) g;
INSERT INTO public.order_items SELECT g, 1 + g % 50, 'sku-' || g FROM generate_series(1, 120) g;
CREATE VIEW public.order_totals AS SELECT customer_id, sum(total) FROM public.orders GROUP BY 1;
-- Like the cutover's write gate: a trigger whose function lives outside the old tables.
CREATE SCHEMA gate;
CREATE FUNCTION gate.pass() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
CREATE TRIGGER write_gate BEFORE INSERT OR UPDATE OR DELETE ON public.orders
    FOR EACH STATEMENT EXECUTE FUNCTION gate.pass();
"""

DECOM = (
    "decommission:\n  stable_for: 14d\n  drop_old_tables_after: 14d\n  write_window: 1d\n"
    "  archive_dir: archive\n"
)


@pytest.fixture
def world(tmp_path: Path, source_db: Db) -> tuple[Runbook, Runbook, Clock]:
    source_db.execute(MONOLITH)
    infra = tmp_path / "infra"
    subprocess.run(["git", "init", "-q", str(infra)], check=True)
    (infra / "main.tf").write_text("# infra\n")
    subprocess.run(["git", "-C", str(infra), "add", "-A"], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(infra),
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "init",
        ],
        check=True,
    )
    clock = Clock()
    rb = make_rb(tmp_path, spec_text(source_db.dsn, DECOM + f"infra:\n  repo: {infra}\n"), clock)
    ctx = rb
    for action, weight in (
        (Action.CREATE_SCHEMA, None),
        (Action.COPY, None),
        (Action.VERIFY, None),
        (Action.SHIFT_TRAFFIC, 20.0),
        (Action.SHIFT_TRAFFIC, 100.0),
    ):
        clock.advance(timedelta(hours=1))
        with rb.step(action, weight=weight, force=True, reason="test setup"):
            pass
    assert rb.phase is Phase.TRAFFIC_COMPLETE
    return ctx, rb, clock


def _failed(results: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {r.name: r.message for r in results if r.verdict is Verdict.FAIL}


def test_refuses_at_each_unmet_condition_then_archives_retires_and_drops(
    world: tuple[Runbook, Runbook, Clock], source_db: Db, target_db: Db, tmp_path: Path
) -> None:
    ctx, rb, clock = world
    ok, results = gather(ctx, None)
    assert not ok
    failed = _failed(results)
    assert failed["stable since traffic reached 100%"] == (
        "traffic has been at 100% for 0ms; the spec asks for 14d (until 2026-01-15 17:00 UTC)"
    )
    assert failed["no P1/P2 incident"].startswith("nobody has attested no P1/P2 incident")
    assert failed["old tables no longer written"] == (
        "write guard installed on public.orders, public.order_items now; they must show no "
        "write for 1d (until 2026-01-02 17:00 UTC)"
    )
    assert failed["nothing else depends on the old tables"] == (
        "public.order_totals (view) depends on orders: remove them with the old code path first"
    )
    assert {r.verdict for r in results if "baseline" in r.name} == {Verdict.SKIPPED}
    with pytest.raises(CheckFailed, match="is not ready to decommission: stable since"):
        run_decommission(rb)
    assert rb.phase is Phase.TRAFFIC_COMPLETE

    source_db.execute("DROP VIEW public.order_totals")
    clock.advance(timedelta(hours=2))
    attest(ctx, "no_incident", "too early")
    clock.advance(timedelta(days=14))
    _, results = gather(ctx, None)
    assert list(_failed(results)) == ["no P1/P2 incident"]
    assert "so it cannot cover the window" in _failed(results)["no P1/P2 incident"]
    attest(ctx, "no_incident", "INC board clean, checked by alice")
    ok, results = gather(ctx, None)
    assert ok, _failed(results)
    assert {r.name: r.verdict for r in results}["old tables no longer written"] is Verdict.PASS

    report = run_decommission(rb)
    assert [d["step"] for d in report.done] == ["mark_stable", "remove_old_path"]
    assert rb.phase is Phase.OLD_PATH_REMOVED
    assert report.waiting is not None
    assert report.waiting.startswith(
        "the old tables of order_service were renamed 0ms ago; they are dropped only 14d after that"
    )
    archive = report.done[1]["archive"]
    assert Path(archive["path"]).parent == tmp_path / "archive"
    assert T.sha256_of(Path(archive["path"])) == archive["sha256"]
    with source_db.connect() as conn:
        assert T.existing(conn, "public", ["orders", "order_items"]) == []
        assert T.existing(conn, "retired_order_service", ["orders", "order_items"]) == [
            "orders",
            "order_items",
        ]

    # The archive restores: the tables with every row.
    target_db.execute("CREATE TABLE public.customers (id int PRIMARY KEY, name text)")
    target_db.execute("INSERT INTO public.customers SELECT g, 'c' FROM generate_series(1, 5) g")
    with target_db.connect() as conn:
        major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000  # type: ignore[index]
    restore = T.pg_tool("pg_restore", major)
    assert archive["restore"] == (
        f"pg_restore -L {archive['restore_list']} -d DBNAME {archive['path']}"
    )
    done = subprocess.run(
        [
            str(restore),
            "--exit-on-error",
            f"--dbname={target_db.dsn}",
            "-L",
            archive["restore_list"],
            archive["path"],
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert target_db.execute("SELECT count(*), sum(total) FROM public.orders") == [
        (50, Decimal("1912.50"))
    ]
    assert target_db.execute("SELECT count(*), max(sku) FROM public.order_items") == [
        (120, "sku-99")
    ]

    # A later run before the grace period: nothing dropped.
    clock.advance(timedelta(days=13))
    report = run_decommission(rb)
    assert report.done == [] and report.waiting and "13d ago" in report.waiting
    with source_db.connect() as conn:
        assert len(T.existing(conn, "retired_order_service", ["orders", "order_items"])) == 2

    clock.advance(timedelta(days=1, minutes=1))
    report = run_decommission(rb)
    assert rb.phase is Phase.DECOMMISSIONED
    assert report.done[0]["dropped"] == ["orders", "order_items"]
    assert report.done[0]["tag"] == "v1.0.0-order_service-decommissioned"
    assert source_db.execute(
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'retired_order_service'"
    ) == [(0,)]
    tag_msg = subprocess.run(
        [
            "git",
            "-C",
            str(tmp_path / "infra"),
            "tag",
            "-l",
            "--format=%(contents)",
            "v1.0.0-order_service-decommissioned",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert tag_msg.stdout.strip() == "order_service monolith code path decommissioned"
    steps = [e.step for e in ctx.journal.history("order_service") if e.kind == "outcome"]
    assert steps[-3:] == ["mark_stable", "remove_old_path", "decommission"]


def test_writes_to_old_tables_are_caught(
    world: tuple[Runbook, Runbook, Clock], source_db: Db
) -> None:
    ctx, _, clock = world
    source_db.execute("DROP VIEW public.order_totals")
    gather(ctx, None)  # installs the guard
    with source_db.connect() as conn:
        conn.execute("UPDATE public.orders SET total = total + 1 WHERE id = 3")
    clock.advance(timedelta(days=2))
    _, results = gather(ctx, None)
    msg = _failed(results)["old tables no longer written"]
    assert msg.startswith(
        "1 write(s) to the old tables recorded since 2026-01-01 17:00 UTC, "
        "the last: UPDATE on public.orders by postgres at "
    )


def test_counters_catch_writes_the_guard_missed(
    world: tuple[Runbook, Runbook, Clock], source_db: Db
) -> None:
    ctx, _, clock = world
    gather(ctx, None)
    with source_db.connect() as conn:
        conn.execute("DROP TRIGGER strangler_guard_write ON public.order_items")
        conn.execute("DELETE FROM public.order_items WHERE id <= 4")
        conn.execute("SELECT pg_stat_force_next_flush()")
    with source_db.connect() as conn:  # put the guard back, as if nothing happened
        T.install_guard(conn, "public", ["order_items"])
    clock.advance(timedelta(days=2))
    _, results = gather(ctx, None)
    msg = _failed(results)["old tables no longer written"]
    assert msg.startswith("write counters changed since 2026-01-01 17:00 UTC: public.order_items ")


def test_traffic_rollback_restarts_the_stable_window(
    world: tuple[Runbook, Runbook, Clock],
) -> None:
    ctx, rb, clock = world
    first, since = traffic_timeline(ctx.journal, "order_service")
    assert first == datetime(2026, 1, 1, 16, 0, tzinfo=first.tzinfo)  # type: ignore[union-attr]
    assert since is not None
    clock.advance(timedelta(days=3))
    with rb.step(Action.ROLLBACK_TRAFFIC, reason="5xx"):
        pass
    assert traffic_timeline(ctx.journal, "order_service")[1] is None
    with rb.step(Action.SHIFT_TRAFFIC, weight=100.0, force=True, reason="again"):
        pass
    assert traffic_timeline(ctx.journal, "order_service")[1] == clock.now


def _all_evidence_holds(rb: Runbook, clock: Clock, source_db: Db) -> None:
    """The world's checklist made to pass: no view on the old tables, the guard on and
    quiet for longer than the window, 14 days at 100 %, the incident board attested."""
    source_db.execute("DROP VIEW public.order_totals")
    gather(rb, None)  # puts the guard on
    clock.advance(timedelta(days=14, hours=1))
    attest(rb, "no_incident", "INC board clean")
    ok, results = gather(rb, None)
    assert ok, _failed(results)


def test_tampered_archive_stops_the_drop(
    world: tuple[Runbook, Runbook, Clock], source_db: Db
) -> None:
    _ctx, rb, clock = world
    _all_evidence_holds(rb, clock, source_db)
    report = run_decommission(rb)
    path = Path(report.done[1]["archive"]["path"])
    path.write_bytes(path.read_bytes() + b"x")
    clock.advance(timedelta(days=15))
    with pytest.raises(CheckFailed, match="changed since it was written"):
        run_decommission(rb)
    # Not even --force drops the tables without their archive.
    with pytest.raises(CheckFailed, match="changed since it was written"):
        run_decommission(rb, force=True, reason="in a hurry")
    assert rb.phase is Phase.OLD_PATH_REMOVED
    with source_db.connect() as conn:
        assert len(T.existing(conn, "retired_order_service", ["orders", "order_items"])) == 2


def _interrupt_the_archive(rb: Runbook, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[Path]]:
    """Run remove_old_path with the journal's disk full right after the dump (the fault
    campaign's decommission-archive x journal-disk): the archive written, not recorded."""
    archive_dir = rb.spec.resolve(rb.service.decommission.archive_dir)
    save = type(rb.progress).save

    def disk_full(self: object, record: object) -> None:
        if isinstance(record, ArchiveRecord):
            raise OSError(28, "No space left on device")
        save(self, record)  # type: ignore[arg-type]

    monkeypatch.setattr(type(rb.progress), "save", disk_full)
    with pytest.raises(StranglerError, match="No space left"):
        run_decommission(rb)
    monkeypatch.setattr(type(rb.progress), "save", save)
    assert rb.phase is Phase.STABLE
    return archive_dir, sorted(archive_dir.glob("order_service-old-tables-2026*.dump"))


def test_an_interrupted_archive_is_taken_again_leaving_one_archive(
    world: tuple[Runbook, Runbook, Clock], source_db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run again, the removal (1) is not refused for the guard its own first attempt took
    off, and (2) leaves one archive, not the first attempt's beside the second's."""
    _ctx, rb, clock = world
    _all_evidence_holds(rb, clock, source_db)
    archive_dir = rb.spec.resolve(rb.service.decommission.archive_dir)
    archive_dir.mkdir(parents=True, exist_ok=True)
    older = archive_dir / "order_service-old-tables-20000101T000000Z.dump"
    older.write_bytes(b"an archive of an earlier life of this service: not ours to remove")
    _, first = _interrupt_the_archive(rb, monkeypatch)
    assert len(first) == 1  # written, not recorded
    clock.advance(timedelta(minutes=5))
    report = run_decommission(rb)
    assert rb.phase is Phase.OLD_PATH_REMOVED
    archive = report.done[-1]["archive"]
    dumps = sorted(p for p in archive_dir.glob("order_service-old-tables-*.dump") if p != older)
    assert dumps == [Path(archive["path"])] and dumps != first
    assert archive["superseded"] == [str(first[0]), str(first[0].with_suffix(".list"))]
    assert older.exists()  # made before the service became stable: left alone
    pg_restore = str(T.pg_tool("pg_restore", 18))  # the embedded server's own version
    restored = subprocess.run(
        [pg_restore, "--list", archive["path"]], capture_output=True, text=True, check=True
    )
    assert "TABLE DATA public orders" in restored.stdout
    removal = next(
        e
        for e in reversed(rb.journal.history("order_service"))
        if e.kind == "intent" and e.step == "remove_old_path"
    )
    quiet = removal.details["evidence"]["old_tables_quiet"]
    assert "taken off by remove_old_path" in quiet["guard"]


def test_a_removal_whose_outcome_was_lost_keeps_its_archive_when_run_again(
    world: tuple[Runbook, Runbook, Clock], source_db: Db
) -> None:
    """The journal's commit failed on the removal's outcome (a kill -9 there is the same):
    before, the archive's record had been cleared in a transaction of its own, so the step
    resumed without it, removed the real archive as an earlier attempt's and dumped tables
    that were already retired (pg_dump: no matching tables), for ever."""
    _ctx, rb, clock = world
    _all_evidence_holds(rb, clock, source_db)
    with commit_fails(rb.journal, outcome_of("remove_old_path")) as fault:
        with pytest.raises(StranglerError, match="disk is full"):
            run_decommission(rb)
        assert fault.fired
    assert rb.phase is Phase.STABLE
    kept = rb.progress.load(ArchiveRecord)
    assert kept is not None, "the archive's record went without the outcome"
    clock.advance(timedelta(minutes=5))
    report = run_decommission(rb)
    assert rb.phase is Phase.OLD_PATH_REMOVED
    archive = report.done[-1]["archive"]
    assert archive["path"] == kept.archive["path"]  # the same archive, intact
    assert T.sha256_of(Path(archive["path"])) == kept.archive["sha256"]
    archive_dir = rb.spec.resolve(rb.service.decommission.archive_dir)
    assert sorted(archive_dir.glob("order_service-old-tables-2026*.dump")) == [
        Path(archive["path"])
    ]
    assert rb.progress.load(ArchiveRecord) is None
    with source_db.connect() as conn:
        assert len(T.existing(conn, "retired_order_service", ["orders", "order_items"])) == 2


def test_an_archive_of_nothing_is_refused(world: tuple[Runbook, Runbook, Clock]) -> None:
    """pg_dump without a --table dumps the whole database: never recorded as an archive."""
    _ctx, rb, _clock = world
    archive_dir = rb.spec.resolve(rb.service.decommission.archive_dir)
    with pytest.raises(CheckFailed, match="no views to archive"):
        archives.make_archive(rb, archive_dir, "views", 18, "public", [])
    assert rb.progress.load(ArchiveRecord) is None
    assert not archive_dir.exists() or list(archive_dir.iterdir()) == []


def test_a_write_after_the_guard_came_off_stops_the_retried_removal(
    world: tuple[Runbook, Runbook, Clock], source_db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ctx, rb, clock = world
    _all_evidence_holds(rb, clock, source_db)
    _interrupt_the_archive(rb, monkeypatch)
    with source_db.connect() as conn:
        before = T.write_counters(conn, "public", ["orders"])["orders"]
    source_db.execute("UPDATE public.orders SET total = total + 1 WHERE id = 1")
    with source_db.connect() as conn:  # the writer's statistics reach the server's counters
        deadline = time.monotonic() + 10
        while T.write_counters(conn, "public", ["orders"])["orders"] == before:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    with pytest.raises(CheckFailed, match="cannot be shown unwritten since remove_old_path"):
        run_decommission(rb)
    # The way back the refusal names: the guard on again, a quiet window, then the removal.
    gather(rb, None)
    clock.advance(timedelta(days=1, hours=1))
    ok, results = gather(rb, None)
    assert ok, _failed(results)
    run_decommission(rb)
    assert rb.phase is Phase.OLD_PATH_REMOVED


@dataclass
class Stats:
    requests: int
    errors: int
    p99: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None


@dataclass
class Measured:
    monolith: Stats
    service: Stats


class HistorySource:
    """A metric source with history: the monolith's baseline before the shift, then now."""

    def __init__(self, before: Stats, monolith_now: Stats, service_now: Stats) -> None:
        self.before, self.monolith_now, self.service_now = before, monolith_now, service_now
        self.asked: list[tuple[datetime, datetime]] = []

    def measure(self, start: datetime, end: datetime) -> Measured:
        self.asked.append((start, end))
        if len(self.asked) == 1:
            return Measured(self.before, Stats(0, 0, None))
        return Measured(self.monolith_now, self.service_now)


def test_metrics_against_the_baseline(world: tuple[Runbook, Runbook, Clock]) -> None:
    ctx, _, clock = world
    clock.advance(timedelta(days=15))
    good = HistorySource(Stats(1000, 10, 0.200), Stats(0, 0, None), Stats(1000, 8, 0.210))
    _, results = gather(ctx, good)
    by = {r.name: r for r in results}
    assert by["error rate vs baseline"].verdict is Verdict.PASS
    assert by["latency vs baseline"].message == "p99 210 ms vs baseline 200 ms (limit 220 ms)"
    assert by["old route at 0 requests"].verdict is Verdict.PASS
    assert good.asked[0][1] == datetime(2026, 1, 1, 16, 0, tzinfo=good.asked[0][1].tzinfo)
    bad = HistorySource(Stats(1000, 10, 0.200), Stats(7, 0, None), Stats(1000, 30, 0.300))
    _, results = gather(ctx, bad)
    by = {r.name: r for r in results}
    assert by["error rate vs baseline"].message == (
        "service 3.0000% vs baseline 1.0000% (limit 1.0000%)"
    )
    assert by["error rate vs baseline"].verdict is Verdict.FAIL
    assert by["latency vs baseline"].verdict is Verdict.FAIL
    assert by["old route at 0 requests"].message == (
        "7 request(s) reached the monolith's route in the last 14d"
    )


@pytest.mark.slow
def test_demo_act_decommission_fast_forward() -> None:
    """The demo's act on the sample monolith, from 100 % traffic to decommissioned."""
    # Outside pytest's tmp root: the servers run as another user, and pytest (of other
    # workers on this machine) tightens that root's permissions while cleaning up.
    where = Path(tempfile.mkdtemp(prefix="strangler-demo-"))
    where.chmod(0o755)
    options = DemoOptions(directory=where / "demo", scale=200, fast_forward=True)
    try:
        with demo_world(options, Console(quiet=True)) as world:
            with world.journal() as journal:
                rb = Runbook(world.spec, journal, "order_service")
                for action, weight in (
                    (Action.CREATE_SCHEMA, None),
                    (Action.COPY, None),
                    (Action.START_SYNC, None),
                    (Action.VERIFY, None),
                    (Action.CUTOVER_WRITES, None),
                    (Action.SHIFT_TRAFFIC, 100.0),
                ):
                    with rb.step(action, weight=weight, force=True, reason="test setup"):
                        pass
            act_decommission(world)
            assert world.facts["decommissioned"] is True
            archive = Path(world.facts["archive"]["path"])
            assert T.sha256_of(archive) == world.facts["archive"]["sha256"]
            with world.connect_monolith() as conn:
                assert T.existing(conn, "public", ["orders", "customers"]) == ["customers"]
    finally:
        shutil.rmtree(where, ignore_errors=True)


def _legacy_write(source_db: Db, statement: str) -> None:
    """A write by the monolith's old code path, with its statistics flushed before we look."""
    with source_db.connect() as conn:
        conn.execute(statement)
        conn.execute("SELECT pg_stat_force_next_flush()")
        conn.execute("SELECT 1")


def _snapshot(rb: Runbook, source_db: Db, tmp_path: Path) -> dict[str, object]:
    """Everything a decommission step could change: the journal, the monolith's catalog
    (tables and their schema, triggers on them) and the archive folder."""
    return {
        "journal": [e.to_dict() for e in rb.journal.history("order_service")],
        "state": rb.journal.state("order_service"),
        "guard": rb.journal.get("order_service", "decommission:guard"),
        "tables": source_db.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE c.relname IN ('orders', 'order_items') "
            "AND c.relkind = 'r' ORDER BY 1, 2"
        ),
        "schemas": source_db.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'retired%' ORDER BY 1"
        ),
        "triggers": source_db.execute(
            "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE NOT tgisinternal "
            "ORDER BY 1, 2"
        ),
        "archive": sorted(p.name for p in (tmp_path / "archive").glob("*")),
    }


@pytest.mark.parametrize("checked_again", [True, False])
def test_stable_is_no_proof_a_write_after_it_stops_the_decommission(
    world: tuple[Runbook, Runbook, Clock], source_db: Db, tmp_path: Path, checked_again: bool
) -> None:
    """Issue 13: the service is declared stable, then a legacy writer updates an old table;
    the archive and rename must not happen, whether or not a --check ran in between."""
    _ctx, rb, clock = world
    _all_evidence_holds(rb, clock, source_db)
    from strangler.steps.decommission import check

    assert check(rb).marked_stable and rb.phase is Phase.STABLE
    clock.advance(timedelta(hours=1))
    _legacy_write(source_db, "UPDATE public.orders SET total = total + 1 WHERE id = 7")
    if checked_again:
        again = check(rb)
        assert not again.passed
        assert _failed(again.results)["old tables no longer written"].startswith(
            "1 write(s) to the old tables recorded since "
        )
    before = _snapshot(rb, source_db, tmp_path)
    with pytest.raises(CheckFailed) as refused:
        run_decommission(rb)
    assert refused.value.exit_code == 1
    if checked_again:
        # The newest check failed: that withdraws the one that made the service stable.
        assert refused.value.message.startswith(
            "order_service has no passing decommission check: the newest"
        )
    else:
        # No check since: the step measured the old tables itself, now.
        assert refused.value.message.startswith(
            "order_service: the old tables are not proven unwritten, measured now: 1 write(s)"
        )
        assert "UPDATE on public.orders" in refused.value.message
    # Refused means nothing changed: not the journal, the catalog, nor the archive folder.
    assert _snapshot(rb, source_db, tmp_path) == before
    assert rb.phase is Phase.STABLE


def test_the_write_window_forgets_writes_older_than_it(
    world: tuple[Runbook, Runbook, Clock], source_db: Db, tmp_path: Path
) -> None:
    """A write counts within decommission.write_window (1d here), then no more: the old
    tables become decommissionable again without hand SQL, --force or a new guard."""
    _ctx, rb, clock = world
    _all_evidence_holds(rb, clock, source_db)
    _legacy_write(source_db, "UPDATE public.order_items SET sku = 'x' WHERE id = 3")
    ok, results = gather(rb, None)
    assert not ok
    assert (
        "the write window (1d) starts again now" in _failed(results)["old tables no longer written"]
    )
    # The write is in the journal's check event now; the guard's log forgot it.
    assert source_db.execute("SELECT count(*) FROM strangler_guard.old_table_writes") == [(0,)]
    clock.advance(timedelta(hours=23))
    ok, results = gather(rb, None)
    assert _failed(results)["old tables no longer written"].startswith(
        "no write for 23h so far; the spec asks for 1d"
    )
    clock.advance(timedelta(hours=1, minutes=1))
    ok, results = gather(rb, None)
    assert ok, _failed(results)
    report = run_decommission(rb)
    assert [d["step"] for d in report.done] == ["mark_stable", "remove_old_path"]
    intent = next(
        e
        for e in reversed(rb.journal.history("order_service"))
        if e.kind == "intent" and e.step == "remove_old_path"
    )
    quiet = intent.details["evidence"]["old_tables_quiet"]
    assert quiet["message"] == "no write recorded or counted for 1d1m"
    assert quiet["fresh"].startswith("within decommission.write_window, measured now")
    with source_db.connect() as conn:
        assert T.existing(conn, "retired_order_service", ["orders", "order_items"]) == [
            "orders",
            "order_items",
        ]


def test_a_write_to_the_retired_tables_stops_the_drop(
    world: tuple[Runbook, Runbook, Clock], source_db: Db
) -> None:
    _ctx, rb, clock = world
    _all_evidence_holds(rb, clock, source_db)
    run_decommission(rb)
    _legacy_write(source_db, "DELETE FROM retired_order_service.order_items WHERE id = 1")
    clock.advance(timedelta(days=15))
    with pytest.raises(CheckFailed, match="the retired tables were written after the archive"):
        run_decommission(rb)
    with source_db.connect() as conn:
        assert len(T.existing(conn, "retired_order_service", ["orders", "order_items"])) == 2


def test_a_crash_restart_of_the_monolith_restarts_the_write_window_and_a_retry_passes(
    world: tuple[Runbook, Runbook, Clock], source_db: Db, tmp_path: Path
) -> None:
    """The fault campaign's decommission-archive x restart: the monolith restarted after a
    crash, its statistics lost. The step refused, said the write window started again, but
    kept nothing, so every retry refused the same way. The refusal now keeps the window's new
    start: a retry inside it is told to wait, one after it archives."""
    _ctx, rb, clock = world
    _legacy_write(source_db, "UPDATE public.orders SET total = total + 1 WHERE id = 9")
    _all_evidence_holds(rb, clock, source_db)
    from strangler.steps.decommission import check

    assert check(rb).marked_stable
    saved = rb.journal.get("order_service", "decommission:guard")
    assert sum(saved["counters"].values()) > 0  # the counters a reset sends back to 0
    with source_db.connect() as conn:
        conn.execute("SELECT pg_stat_reset()")
    clock.advance(timedelta(hours=1))
    with pytest.raises(CheckFailed) as refused:
        run_decommission(rb)
    assert "write counters were reset" in refused.value.message
    ends = clock.now + timedelta(days=1)
    assert f"ends {ends:%Y-%m-%d %H:%M:%S} UTC" in refused.value.message
    assert rb.phase is Phase.STABLE
    assert list((tmp_path / "archive").glob("*")) == []
    clock.advance(timedelta(hours=2))  # inside the new window: still refused, told to wait
    with pytest.raises(CheckFailed, match="no write for 2h so far"):
        run_decommission(rb)
    clock.advance(timedelta(days=1))
    report = run_decommission(rb)
    assert rb.phase is Phase.OLD_PATH_REMOVED, report
    assert Path(report.done[-1]["archive"]["path"]).is_file()
