"""Errors at the boundary (issue 11): every bad input the command line can be given ends in a
clear message and the exit code of its kind, never a traceback, and changes nothing.

The ``cli`` fixture itself fails a test when a traceback is printed or a foreign exception
(psycopg, sqlite3, OSError) reached the command line's last resort instead of being converted
where it entered strangler; this walk feeds it every kind of mistake we know of.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

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
    tables: [orders]
    target: {{ schema: order_service }}
    strategy: copy
"""

UNREACHABLE = "postgresql://app:secret-pw-1@127.0.0.1:9/monolith?connect_timeout=2"


def _spec(tmp_path: Path, source: str = UNREACHABLE, name: str = "strangler.yaml") -> Path:
    path = tmp_path / name
    path.write_text(SPEC.format(source=source))
    return path


# (arguments after the spec, exit code, text the error must contain)
BAD_ARGUMENTS = [
    (["plan", "nobody"], 2, "no service 'nobody'"),
    (["history", "nobody"], 2, "no service 'nobody'"),
    (["run", "order_service", "--until", "later"], 2, "--until 'later' is not a phase"),
    (["run", "order_service", "--all"], 2, "name one service, or pass --all"),
    (["rollback", "order_service", "--traffic"], 2, "needs --reason"),
    (["rollback", "order_service", "--traffic", "--schema", "--reason", "x"], 2, "exactly one"),
    (["shift", "order_service"], 2, "choose one of --to N, --auto or --approve"),
    (["shift", "order_service", "--to", "5", "--force"], 2, "--force needs --reason"),
    (["shift", "order_service", "--to", "5", "--yes"], 2, "no traffic: section"),
    (["verify", "order_service", "--recheck", "-1"], 2, "--recheck must be 0 or more"),
    (["verify", "order_service", "--every", "soon"], 2, "--every"),
    (["attest", "order_service", "On Call!", "--note", "x"], 2, "is not an attestation name"),
    (["attest", "order_service", "oncall"], 2, "needs --note"),
    (["validate", "order_service"], 2, "validate needs services.order_service.preflight"),
    (["decommission", "order_service", "--force"], 2, "--force needs --reason"),
    (["copy", "order_service", "--jobs", "0"], 2, "Invalid value"),
    (["status", "--no-such-flag"], 2, "No such option"),
]


@pytest.mark.parametrize(("args", "code", "text"), BAD_ARGUMENTS, ids=lambda v: str(v)[:40])
def test_bad_arguments_exit_2_with_a_message_and_change_nothing(
    cli: Cli, tmp_path: Path, args: list[str], code: int, text: str
) -> None:
    spec = _spec(tmp_path)
    done = cli(*args, "-f", str(spec))
    assert done.code == code, done.stderr
    assert text in done.stderr, done.stderr
    assert "secret-pw-1" not in done.stdout + done.stderr
    assert _entries(tmp_path / "state.db") == 0, "a refused command journals nothing"


def _entries(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as lite:
        row = lite.execute("SELECT count(*) FROM strangler_entries").fetchone()
    return int(row[0])


def test_a_table_the_service_does_not_move_is_refused_before_anything_is_journaled(
    cli: Cli, source_db: Db, tmp_path: Path
) -> None:
    spec = _spec(tmp_path, source_db.dsn)
    done = cli("verify", "order_service", "--table", "ordrs", "-f", str(spec))
    assert done.code == 2
    assert "does not move table(s) ordrs; it moves orders" in done.stderr
    history = cli("history", "order_service", "-f", str(spec), "-o", "json").json()
    assert history["entries"] == [], "a typo is not evidence"


def test_an_unreachable_database_is_exit_3_naming_the_host_not_the_password(
    cli: Cli, tmp_path: Path
) -> None:
    spec = _spec(tmp_path)
    for args in (("copy", "order_service"), ("copy", "order_service", "--dry-run")):
        done = cli(*args, "-f", str(spec))
        assert done.code == 3, (args, done.stderr)
        assert "127.0.0.1" in done.stderr and "9" in done.stderr
        assert "secret-pw-1" not in done.stdout + done.stderr
    as_json = cli("copy", "order_service", "-f", str(spec), "-o", "json")
    assert as_json.code == 3 and as_json.json()["error"] == "DatabaseUnreachable"


def test_a_wrong_password_is_exit_3_and_journals_no_verification(
    cli: Cli, source_db: Db, tmp_path: Path
) -> None:
    source_db.execute("CREATE TABLE public.orders (id int PRIMARY KEY)")
    wrong = source_db.dsn.replace("postgresql://", "postgresql://nobody_here:wrong-pw-9@", 1)
    if "@" in source_db.dsn.split("//", 1)[1]:
        wrong = "postgresql://nobody_here:wrong-pw-9@" + source_db.dsn.split("@", 1)[1]
    spec = _spec(tmp_path, wrong)
    with Journal(f"sqlite:///{tmp_path / 'state.db'}") as journal:
        for step, phase in (("create_schema", "schema_ready"), ("copy", "copied")):
            journal.outcome(journal.intent("order_service", step), "ok", phase=phase)
    done = cli("verify", "order_service", "-f", str(spec))
    assert done.code == 3, done.stderr
    assert "wrong-pw-9" not in done.stdout + done.stderr
    history = cli("history", "order_service", "-f", str(spec), "-o", "json").json()
    assert not [e for e in history["entries"] if e["step"] == "verify" and e["kind"] == "event"]


def test_files_that_cannot_be_written_are_exit_2_naming_the_path(
    cli: Cli, source_db: Db, tmp_path: Path
) -> None:
    nowhere = tmp_path / "no" / "such" / "dir"
    done = cli("init", str(nowhere / "strangler.yaml"))
    assert done.code == 2 and str(nowhere) in done.stderr, done.stderr
    spec = _spec(tmp_path, source_db.dsn)
    alarms = cli("alarms", "order_service", "-f", str(spec), "--out", str(nowhere / "a.tf"))
    assert alarms.code == 2 and str(nowhere) in alarms.stderr, alarms.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_a_journal_that_cannot_be_opened_is_exit_2(cli: Cli, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    spec = _spec(tmp_path)
    spec.write_text(spec.read_text().replace("sqlite:///state.db", f"sqlite:///{locked}/s.db"))
    done = cli("status", "-f", str(spec))
    assert done.code == 2 and "cannot open the journal" in done.stderr


def test_a_journal_path_that_is_a_directory_is_exit_2(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "state.db").mkdir()
    done = cli("status", "-f", str(_spec(tmp_path)))
    assert done.code == 2, done.stderr
    assert "cannot open the journal" in done.stderr and "state.db" in done.stderr


def test_a_journal_server_that_is_down_is_exit_3(cli: Cli, tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    spec.write_text(
        spec.read_text().replace(
            "sqlite:///state.db", "postgresql://j:journal-pw-3@127.0.0.1:9/j?connect_timeout=2"
        )
    )
    done = cli("status", "-f", str(spec))
    assert done.code == 3 and "cannot open the journal" in done.stderr
    assert "journal-pw-3" not in done.stderr
