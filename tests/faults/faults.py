"""The fault kinds: what each does to a running step, when, and how it is healed.

Every fault acts through :class:`Moment` (the trial as a fault sees it). ``before`` runs
before the step's process starts (a slot invalidated while sync is stopped, low timeouts),
``during`` waits for a random moment of the step and strikes, ``heal`` puts the world back
before the documented recovery runs. A moment is either *inside a step* (strangler has
written the step's intent and not yet its outcome: the fault lands in the middle of work)
or *at a random time* within the step's uninterrupted duration.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from strangler.pg.embedded import PgInstance
from strangler.phases import Phase
from tests.faults.steps import StepCase
from tests.faults.world import World, WorldConfig

__all__ = ["FAULTS", "Fault", "Moment", "fault_named"]


@dataclass
class Moment:
    world: World
    step: StepCase
    rng: random.Random
    calm_seconds: float
    end_phase: str
    child: subprocess.Popen[str] | None = None
    rivals: list[subprocess.Popen[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def alive(self) -> bool:
        return self.child is not None and self.child.poll() is None

    def wait_moment(self) -> str:
        """Wait for the moment to strike; returns where it is ('' when the step ended first)."""
        inside = self.rng.random() < 0.5
        deadline = time.monotonic() + self.rng.uniform(0.05, max(0.3, self.calm_seconds * 1.1))
        give_up = time.monotonic() + max(5.0, self.calm_seconds * 2)
        while self.alive():
            step = _inside_a_step(self.world)
            if inside and step is not None:
                time.sleep(self.rng.uniform(0.0, 0.4))  # somewhere in it, not only its start
                return f"inside {step}"
            now = time.monotonic()
            if (not inside and now > deadline) or now > give_up:
                return f"at a random moment ({step or 'between steps'})"
            time.sleep(0.01)
        return ""

    def hold(self, low: float, high: float) -> None:
        """Keep a fault on for a while, or until the step's process ends."""
        until = time.monotonic() + self.rng.uniform(low, high)
        while self.alive() and time.monotonic() < until:
            time.sleep(0.05)


_DANGLING = (
    "SELECT i.step FROM strangler_entries i WHERE i.kind = 'intent' AND NOT EXISTS "
    "(SELECT 1 FROM strangler_entries o WHERE o.intent_id = i.id)"
)


def _inside_a_step(world: World) -> str | None:
    if not world.journal_path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{world.journal_path}?mode=ro", uri=True, timeout=0.5) as lite:
            row = lite.execute(_DANGLING).fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


class Fault:
    name = ""
    summary = ""

    def applies(self, step: StepCase, config: WorldConfig) -> bool:
        return True

    def before(self, m: Moment) -> None:
        return None

    def during(self, m: Moment) -> str:
        return ""

    def heal(self, m: Moment) -> None:
        return None


def _sides(m: Moment) -> Sequence[str]:
    return ("source",) if m.world.config.same_instance else ("source", "target")


class Kill9(Fault):
    name, summary = "kill-9", "SIGKILL of the strangler process"

    def during(self, m: Moment) -> str:
        where = m.wait_moment()
        if where and m.child is not None and m.alive():
            os.kill(m.child.pid, signal.SIGKILL)
            return f"killed {where}"
        return "the step ended first"


class Restart(Fault):
    name, summary = "restart", "pg_ctl stop -m immediate of a server, then start"

    def during(self, m: Moment) -> str:
        side = m.rng.choice(_sides(m))
        where = m.wait_moment()
        if not where:
            return "the step ended first"
        down = m.rng.uniform(0.0, 2.0)
        m.world.servers.side(side).restart(down_for=down)  # type: ignore[arg-type]
        return f"{side} server restarted {where}, down {down:.1f}s"


class Network(Fault):
    name, summary = "network", "connections to a server dropped (RST) or stalled"

    def during(self, m: Moment) -> str:
        side = m.rng.choice(_sides(m))
        stall = m.rng.random() < 0.5
        where = m.wait_moment()
        if not where:
            return "the step ended first"
        proxy = m.world.servers.side(side).proxy  # type: ignore[arg-type]
        if stall:
            seconds = m.rng.uniform(1.0, 8.0)
            proxy.stall(seconds)
            return f"{side} link stalled {seconds:.1f}s {where}"
        refuse = m.rng.uniform(0.0, 3.0)
        cut = proxy.drop(refuse_for=refuse)
        return f"{side} link dropped ({cut} connections, refused {refuse:.1f}s) {where}"

    def heal(self, m: Moment) -> None:
        for server in (m.world.servers.source, m.world.servers.target):
            server.proxy.heal()


class TargetDisk(Fault):
    name, summary = "target-disk-full", "the service server's disk filled up"

    def applies(self, step: StepCase, config: WorldConfig) -> bool:
        return not config.same_instance

    def during(self, m: Moment) -> str:
        disk = m.world.servers.target.disk
        if disk is None:
            return "no target disk to fill"
        where = m.wait_moment()
        if not where:
            return "the step ended first"
        disk.fill()
        m.hold(1.0, 4.0)
        disk.deflate()
        return f"target disk full {where}"

    def heal(self, m: Moment) -> None:
        disk = m.world.servers.target.disk
        if disk is not None:
            disk.deflate()
        m.world.servers.target.ensure_up()


class JournalDisk(Fault):
    name, summary = "journal-disk", "the journal's disk full or read-only"

    def during(self, m: Moment) -> str:
        disk = m.world.journal_disk
        if disk is None:
            return "no journal disk"
        read_only = m.rng.random() < 0.5
        where = m.wait_moment()
        if not where:
            return "the step ended first"
        if read_only:
            disk.read_only()
        else:
            disk.fill()
        m.hold(1.0, 4.0)
        disk.heal()
        return f"journal disk {'read-only' if read_only else 'full'} {where}"

    def heal(self, m: Moment) -> None:
        if m.world.journal_disk is not None:
            m.world.journal_disk.heal()


# Steps whose start phase holds a slot they read (forward before cutover, reverse after).
_SLOT_STEPS = {"sync-forward", "sync-reverse", "cutover", "rollback-writes", "verify", "shift"}


class SlotLost(Fault):
    name, summary = "slot-invalidated", "max_slot_wal_keep_size exceeded while sync is stopped"

    def applies(self, step: StepCase, config: WorldConfig) -> bool:
        return step.name in _SLOT_STEPS and config.strategy == "online"

    def before(self, m: Moment) -> None:
        reverse = Phase(m.step.start_for(m.world.config)) in (
            Phase.WRITES_CUT_OVER,
            Phase.TRAFFIC,
        )
        server = m.world.target_server if reverse else m.world.servers.source
        db = m.world.target_db if reverse else m.world.source_db
        slot = f"strangler_{m.world.service}" + ("_rev" if reverse else "")
        invalidate(server.instance, db, slot)
        m.notes.append(f"slot {slot} invalidated before the step")

    def during(self, m: Moment) -> str:
        return "slot invalidated before the step (sync stopped)"


def invalidate(instance: PgInstance, db: str, slot: str, timeout: float = 60) -> None:
    """Push ``slot`` past ``max_slot_wal_keep_size``: a tiny limit, WAL switched and
    checkpointed until the server marks the slot lost; then the limit is lifted."""

    def system(value: str | None) -> None:
        with psycopg.connect(instance.dsn(), autocommit=True) as conn:
            if value is None:
                conn.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
            else:
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET max_slot_wal_keep_size = {}").format(
                        sql.Literal(value)
                    )
                )
            conn.execute("SELECT pg_reload_conf()")

    system("1MB")
    try:
        deadline = time.monotonic() + timeout
        with psycopg.connect(instance.dsn(db), autocommit=True) as conn:
            while True:
                status = conn.execute(
                    "SELECT wal_status FROM pg_replication_slots WHERE slot_name = %s", (slot,)
                ).fetchone()
                if status is None:
                    raise RuntimeError(f"no slot {slot} to invalidate")
                if status[0] == "lost":
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"slot {slot} still {status[0]} after {timeout}s")
                # WAL of no table: a few megabytes of logical messages, then a new segment.
                conn.execute(
                    "SELECT pg_logical_emit_message(false, 'faults', repeat('x', 1 << 20))"
                    " FROM generate_series(1, 4)"
                )
                conn.execute("SELECT pg_switch_wal()")
                conn.execute("CHECKPOINT")
    finally:
        system(None)


class Timeouts(Fault):
    name, summary = "timeouts", "statement_timeout and lock_timeout set low on a server"

    def before(self, m: Moment) -> None:
        side = m.rng.choice(_sides(m))
        server = m.world.servers.side(side)  # type: ignore[arg-type]
        db = m.world.source_db if side == "source" else m.world.target_db
        stmt = m.rng.choice(["50ms", "200ms", "1s"])
        lock = m.rng.choice(["10ms", "100ms"])
        with server.connect() as conn:
            for name, value in (("statement_timeout", stmt), ("lock_timeout", lock)):
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                        sql.Identifier(db), sql.Identifier(name), sql.Literal(value)
                    )
                )
        m.notes.append(f"{side}: statement_timeout {stmt}, lock_timeout {lock}")

    def during(self, m: Moment) -> str:
        return "; ".join(m.notes)

    def heal(self, m: Moment) -> None:
        for side in _sides(m):
            server = m.world.servers.side(side)  # type: ignore[arg-type]
            db = m.world.source_db if side == "source" else m.world.target_db
            with server.connect() as conn:
                conn.execute(sql.SQL("ALTER DATABASE {} RESET ALL").format(sql.Identifier(db)))


class SecondOperator(Fault):
    name, summary = "second-operator", "a second operator runs the same or a conflicting step"

    def during(self, m: Moment) -> str:
        same = m.rng.random() < 0.5
        where = m.wait_moment()
        if same:
            args = m.step.command(m.world.service)
        else:
            args = ["run", m.world.service, "--until", m.end_phase]
        rival = m.world.popen(*args, log=f"rival-{len(m.rivals)}.log")
        m.rivals.append(rival)
        return f"'strangler {' '.join(args)}' started {where or 'after the step ended'}"

    def heal(self, m: Moment) -> None:
        for rival in m.rivals:
            try:
                rival.wait(timeout=300)
            except subprocess.TimeoutExpired:
                rival.kill()
                rival.wait()


class RouterFault(Fault):
    name, summary = "router-backend", "the router's or the metric source's API drops or stalls"

    def applies(self, step: StepCase, config: WorldConfig) -> bool:
        return config.traffic and bool(step.touches & {"router", "metrics"})

    def during(self, m: Moment) -> str:
        backend = m.world.backend
        assert backend is not None
        proxies = [("router", backend.router_proxy)]
        if backend.metrics_proxy is not None and "metrics" in m.step.touches:
            proxies.append(("metrics", backend.metrics_proxy))
        which, proxy = m.rng.choice(proxies)
        stall = m.rng.random() < 0.5
        where = m.wait_moment()
        if not where:
            return "the step ended first"
        what = f"{backend.kind} {which} API"
        if stall:
            seconds = m.rng.uniform(1.0, 6.0)
            proxy.stall(seconds)
            return f"{what} stalled {seconds:.1f}s {where}"
        refuse = m.rng.uniform(0.5, 4.0)
        proxy.drop(refuse_for=refuse)
        m.hold(refuse, refuse)
        return f"{what} down {refuse:.1f}s {where}"

    def heal(self, m: Moment) -> None:
        if m.world.backend is not None:
            m.world.backend.heal()


FAULTS: tuple[Fault, ...] = (
    Kill9(),
    Restart(),
    Network(),
    TargetDisk(),
    JournalDisk(),
    SlotLost(),
    Timeouts(),
    SecondOperator(),
    RouterFault(),
)


def fault_named(name: str) -> Fault:
    for fault in FAULTS:
        if fault.name == name:
            return fault
    raise KeyError(f"no fault {name!r}; faults: {', '.join(f.name for f in FAULTS)}")
