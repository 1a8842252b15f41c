"""What must hold after a trial, read by the harness itself, never by strangler's own code.

- :func:`digest`: each moved table's rows as ``count:md5`` of their text, in key order, on
  either side (an independent digest, not strangler's verify);
- :func:`signature`: everything strangler leaves on the servers and in the journal (phase,
  weight, slots, publications, write gates and their state, schemas, role, stored positions,
  steps that never ended, lock records), to compare with an uninterrupted run;
- :func:`router_agrees`: the router's weight equals the journal's.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from strangler.journal import file_lock_taken
from tests.faults.world import TABLES, World

__all__ = [
    "Signature",
    "differences",
    "digest",
    "journal_state",
    "left_behind",
    "router_agrees",
    "signature",
]


def digest(conn: psycopg.Connection[Any], schema: str) -> dict[str, str] | None:
    """``{table: "count:md5"}`` for the moved tables in ``schema``; None if one is missing."""
    out = {}
    for table in TABLES:
        if not conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (sql.Identifier(schema, table).as_string(conn),)
        ).fetchone()[0]:
            return None
        row = conn.execute(
            sql.SQL(
                "SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, '|' "
                "ORDER BY t.id)), '-') FROM {} t"
            ).format(sql.Identifier(schema, table))
        ).fetchone()
        out[table] = str(row[0]) if row else ""
    return out


def differences(a: dict[str, str] | None, b: dict[str, str] | None) -> dict[str, str]:
    """What differs between two digests: per table, the two ``count:md5`` values."""
    if a is None or b is None:
        sides = ["missing" if d is None else "present" for d in (a, b)]
        return {"tables": " vs ".join(sides)}
    return {t: f"{a[t]} vs {b[t]}" for t in TABLES if a[t] != b[t]}


def _slots(conn: psycopg.Connection[Any], db: str) -> list[str]:
    rows = conn.execute(
        "SELECT slot_name || CASE WHEN wal_status = 'lost' THEN ' (lost)' ELSE '' END "
        "FROM pg_replication_slots WHERE database = %s ORDER BY 1",
        (db,),
    ).fetchall()
    return [r[0] for r in rows]


def _gates(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    funcs = conn.execute(
        "SELECT p.proname, p.prosrc LIKE '%%RAISE%%' FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = '_strangler' ORDER BY 1"
    ).fetchall()
    triggers = conn.execute(
        "SELECT c.relnamespace::regnamespace::text || '.' || c.relname FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = 'strangler_write_gate' ORDER BY 1"
    ).fetchall()
    return {
        "functions": {
            name.split("_")[-1]: ("closed" if closed else "open") for name, closed in funcs
        },
        "triggers": [t[0] for t in triggers],
    }


def _schema_tables(conn: psycopg.Connection[Any]) -> dict[str, list[str]]:
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND c.relname = ANY(%s) ORDER BY 1, 2",
        (list(TABLES),),
    ).fetchall()
    out: dict[str, list[str]] = {}
    for schema, table in rows:
        out.setdefault(schema, []).append(table)
    return out


def _positions(conn: psycopg.Connection[Any]) -> list[str]:
    if not conn.execute("SELECT to_regclass('_strangler.sync_position') IS NOT NULL").fetchone()[0]:
        return []
    return [r[0] for r in conn.execute("SELECT slot FROM _strangler.sync_position ORDER BY 1")]


def journal_state(world: World) -> dict[str, Any]:
    path = world.journal_path
    untouched = {"phase": "planned", "weight": 0.0, "dangling": [], "locks": []}
    if not path.exists():
        return untouched
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as lite:
        # A journal strangler opened on a full disk: the file is there, its tables are not.
        if not lite.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'strangler_services'"
        ).fetchone():
            return untouched
        state = lite.execute(
            "SELECT phase, weight FROM strangler_services WHERE service = ?", (world.service,)
        ).fetchone()
        dangling = lite.execute(
            "SELECT i.step FROM strangler_entries i WHERE i.service = ? AND i.kind = 'intent' "
            "AND NOT EXISTS (SELECT 1 FROM strangler_entries o WHERE o.intent_id = i.id)",
            (world.service,),
        ).fetchall()
        records = lite.execute("SELECT service, pid FROM strangler_locks").fetchall()
    return {
        "phase": state[0] if state else "planned",
        "weight": float(state[1]) if state else 0.0,
        "dangling": [d[0] for d in dangling],
        "locks": [name for name, pid in records if _lock_left(path, name, int(pid))],
    }


def _lock_left(journal: Path, service: str, pid: int) -> bool:
    """Whether a lock record stands for a lock left behind once the trial's processes ended:
    its lock is still taken, or the process it names still runs. A record of a process that
    is gone, whose lock died with it, is no lock: strangler shows nobody holding it and the
    next lock taken on the host removes the record (a kill -9 leaves one every time)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 0)
        return True
    return file_lock_taken(journal, service)


@dataclass(frozen=True)
class Signature:
    """What an uninterrupted run and a trial must both end with (names made world-neutral)."""

    values: dict[str, Any]

    def diff(self, other: Signature) -> dict[str, Any]:
        keys = sorted(set(self.values) | set(other.values))
        return {
            k: {"got": self.values.get(k), "want": other.values.get(k)}
            for k in keys
            if self.values.get(k) != other.values.get(k)
        }


def signature(world: World) -> Signature:
    """The trial's end state, with the world's unique names replaced by placeholders."""
    tag = world.tag
    out: dict[str, Any] = {}
    out.update({f"journal.{k}": v for k, v in journal_state(world).items()})
    with world.servers.source.connect(world.source_db) as src:
        out["source.slots"] = _slots(src, world.source_db)
        out["source.publications"] = [
            r[0] for r in src.execute("SELECT pubname FROM pg_publication ORDER BY 1")
        ]
        out["source.gates"] = _gates(src)
        out["source.tables"] = _schema_tables(src)
        out["source.positions"] = _positions(src)
    target = world.target_server
    with target.connect(world.target_db) as dst:
        out["target.slots"] = _slots(dst, world.target_db)
        out["target.publications"] = [
            r[0] for r in dst.execute("SELECT pubname FROM pg_publication ORDER BY 1")
        ]
        out["target.gates"] = _gates(dst)
        out["target.tables"] = _schema_tables(dst)
        out["target.positions"] = _positions(dst)
        out["role"] = bool(
            dst.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (world.role,)).fetchone()
        )
    archive = world.home / "archive"
    out["archives"] = len(list(archive.glob("*.dump"))) if archive.exists() else 0
    return Signature(_neutral(out, tag))


def _neutral(value: Any, tag: str) -> Any:
    """``value`` with the world's tag replaced, so two worlds' signatures compare."""
    if isinstance(value, str):
        return value.replace(tag, "<tag>")
    if isinstance(value, dict):
        return {_neutral(k, tag): _neutral(v, tag) for k, v in value.items()}
    if isinstance(value, list):
        return [_neutral(v, tag) for v in value]
    return value


_FORWARD = {"copied", "syncing", "verified"}
_REVERSE = {"writes_cut_over", "traffic", "traffic_complete", "stable"}


def left_behind(world: World, sig: Signature) -> list[str]:
    """What exists that the journal's phase does not account for (checked on every run, the
    uninterrupted ones too): a slot or publication of the wrong direction or of none, a step
    that never ended, a lock record."""
    v = sig.values
    phase, online = v["journal.phase"], world.config.strategy == "online"
    forward, reverse = "strangler_s<tag>", "strangler_s<tag>_rev"
    want_source = [forward] if online and phase in _FORWARD else []
    want_target = [reverse] if online and phase in _REVERSE else []
    if world.config.same_instance:
        want_source = want_target = sorted(want_source + want_target)
    out = []
    for side, want in (("source", want_source), ("target", want_target)):
        for what in ("slots", "publications"):
            got = [n for n in v[f"{side}.{what}"] if n.startswith("strangler_")]
            if got != want:
                out.append(f"{side} {what} {got}, where phase {phase!r} accounts for {want}")
    if v["journal.dangling"]:
        out.append(f"steps that never recorded an outcome: {v['journal.dangling']}")
    if v["journal.locks"]:
        out.append(f"locks left behind (still taken, or their process runs): {v['journal.locks']}")
    return out


def router_agrees(world: World) -> str | None:
    """None when the router's weight equals the journal's; else what differs."""
    if world.backend is None or not world.config.traffic:
        return None
    held = world.backend.weight()
    journal = journal_state(world)["weight"]
    if abs(held - journal) > 0.5:
        return f"the router holds {held:g} % but the journal says {journal:g} %"
    return None
