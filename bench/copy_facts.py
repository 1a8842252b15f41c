"""Helpers of ``bench/bench_copy.py``: machine facts, tool versions, and the phase breakdown of
one ``strangler copy`` read back from its own journal (the SQLite state file of the run).

The breakdown is strangler's own record, not a profiler's: the journal stamps each step's
intent and outcome, each finished chunk and each finished post-load statement; the command's
JSON output adds the seconds it measured per phase. Together they say where the wall time of
a run went (start-up, schema, rows, index builds that outlast the rows, FK validation,
ANALYZE, sequences and the count check, exit), so a goal not met can be explained.
"""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg

# The order in which the page lists a run's phases (the copy's own names, then the journal's).
PHASES = [
    ("start-up", "process start → first journal entry (imports, spec, evidence checks)"),
    ("schema", "create_schema step: schema, types, bare tables, role"),
    ("rows", "copy step start → last chunk recorded (indexes of finished tables build meanwhile)"),
    ("indexes after rows", "last chunk → last index recorded (index builds that outlast the rows)"),
    ("keys", "copy's own 'keys' seconds: what waits for all partitions / PK attachments"),
    ("fks", "copy's own 'fks' seconds: foreign keys created NOT VALID"),
    ("fk validation", "copy's own 'validate' seconds: VALIDATE CONSTRAINT, 2 side by side"),
    ("finish", "copy's own 'finish' seconds: triggers, comments, grants"),
    ("analyze", "copy's own 'analyze' seconds"),
    (
        "sequences + count check",
        "copy's own 'sequences_and_counts' seconds: setval, count(*) of each target table",
    ),
    ("copy step total", "copy step intent → outcome (journal)"),
    ("exit", "copy outcome → process exit (rendering, interpreter exit)"),
    ("wall", "the whole command, as timed by the benchmark"),
]


@dataclass
class RunPhases:
    """Seconds per phase of one strangler copy (keys of :data:`PHASES`)."""

    seconds: dict[str, float] = field(default_factory=dict)
    statements: dict[str, int] = field(default_factory=dict)  # finished statements by kind


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def phases_from_journal(
    state_db: Path, service: str, started: datetime, ended: datetime, seconds: dict[str, float]
) -> RunPhases:
    """Where one ``strangler copy`` spent its time, from its journal and its JSON ``seconds``.

    ``started``/``ended``: the benchmark's clock (UTC) around the command.
    """
    out = RunPhases()
    with sqlite3.connect(state_db) as db:
        entries = db.execute(
            "SELECT step, kind, at FROM strangler_entries WHERE service = ? ORDER BY id", (service,)
        ).fetchall()
        progress = db.execute(
            "SELECT key, updated_at FROM strangler_progress WHERE service = ?", (service,)
        ).fetchall()
    span: dict[str, dict[str, datetime]] = {}
    for step, kind, at in entries:
        span.setdefault(step, {}).setdefault(kind, _at(at))
    chunks = [_at(at) for key, at in progress if key.startswith("copy/chunk/")]
    ddl = [
        (key.removeprefix("copy/ddl/"), _at(at))
        for key, at in progress
        if key.startswith("copy/ddl/")
    ]
    for key, _ in ddl:
        kind = key.split(":", 1)[0]
        out.statements[kind] = out.statements.get(kind, 0) + 1
    indexes = [at for key, at in ddl if key.startswith("index:")]
    first = min((e for s in span.values() for e in s.values()), default=started)
    sec = out.seconds
    sec["start-up"] = (first - started).total_seconds()
    schema = span.get("create_schema", {})
    if "intent" in schema and "outcome" in schema:
        sec["schema"] = (schema["outcome"] - schema["intent"]).total_seconds()
    copy = span.get("copy", {})
    if "intent" in copy and chunks:
        last_chunk = max(chunks)
        sec["rows"] = (last_chunk - copy["intent"]).total_seconds()
        if indexes:
            sec["indexes after rows"] = max(0.0, (max(indexes) - last_chunk).total_seconds())
    for name, key in [
        ("keys", "keys"),
        ("fks", "fks"),
        ("fk validation", "validate"),
        ("finish", "finish"),
        ("analyze", "analyze"),
        ("sequences + count check", "sequences_and_counts"),
    ]:
        if key in seconds:
            sec[name] = float(seconds[key])
    if "intent" in copy and "outcome" in copy:
        sec["copy step total"] = (copy["outcome"] - copy["intent"]).total_seconds()
        sec["exit"] = (ended - copy["outcome"]).total_seconds()
    sec["wall"] = (ended - started).total_seconds()
    return out


def render_phases(title: str, runs: list[RunPhases]) -> list[str]:
    """A markdown table: one row per phase, one column per run."""
    head = " | ".join(f"run {i}" for i in range(1, len(runs) + 1))
    lines = [
        f"Phases of {title}, seconds, from strangler's own journal and JSON figures:",
        "",
        f"| phase | {head} | what it covers |",
        "|---" * (len(runs) + 2) + "|",
    ]
    for name, what in PHASES:
        cells = " | ".join(f"{r.seconds[name]:.2f}" if name in r.seconds else "-" for r in runs)
        lines.append(f"| {name} | {cells} | {what} |")
    if runs and runs[-1].statements:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(runs[-1].statements.items()))
        lines += ["", f"Post-load statements recorded in the last run, by kind: {kinds}."]
    lines += [
        "",
        "'rows' and the index builds overlap (a table's indexes start as soon as its last chunk "
        "lands); 'rows' also holds the source count in the snapshot, which runs beside the load.",
    ]
    return lines


def tool_version(argv: list[str], env: dict[str, str]) -> str:
    """What ``argv`` (a ``--version`` call) prints, log lines (they start with a date) left out."""
    try:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    except OSError as exc:
        return f"unavailable ({exc.strerror})"
    lines = (done.stdout + done.stderr).strip().splitlines()
    kept = [line.strip() for line in lines if line.strip() and not line[:1].isdigit()]
    return "; ".join(kept) or "?"


def server_version(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT version()").fetchone()
        assert row is not None
        return str(row[0]).split(" on ")[0]


def machine_facts() -> dict[str, str]:
    """nproc, RAM, kernel, Python: the facts that do not change during a run."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "nproc": str(os.cpu_count()),
        "RAM": f"{ram:.0f} GiB",
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on


def server_cpu(data_dir: Path) -> float:
    """CPU seconds (user + system) a PostgreSQL server has used so far: the postmaster's own,
    its reaped children's (backends that ended: ``cutime``/``cstime``) and its live
    children's. The difference around a scenario is that server's share of the work."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    own = _stat(pid)
    if own is None:
        return 0.0
    # after "(comm) ": [0] state, [1] ppid, … [11] utime, [12] stime, [13] cutime, [14] cstime
    total = sum(int(own[i]) for i in (11, 12, 13, 14))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is not None and fields[1] == str(pid):
            total += int(fields[11]) + int(fields[12])
    return total / tick
