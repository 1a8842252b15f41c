"""Spec files for tests, written to tmp_path, and the CLI run as a real subprocess."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest

# What strangler writes that a secret must never reach: journals (SQLite, with their WAL),
# reports, logs, archives' listings. Spec files and the demo's env file hold secrets by design.
_PRODUCED = {".db", ".db-wal", ".md", ".html", ".json", ".log", ".list", ".tf", ".rules"}

MINIMAL = """\
version: 1
state: sqlite:///state.db
source:
  dsn: {source}
  schema: public
services:
  order_service:
    tables: [orders, order_items]
    target:
      {target_dsn}schema: order_service
    strategy: {strategy}
"""


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    """Write a spec; ``write_spec(text)`` or ``write_spec(source=dsn, strategy=...)``."""

    def write(
        text: str | None = None,
        *,
        source: str = "postgresql://localhost/monolith",
        target: str | None = None,
        strategy: str = "copy",
        name: str = "strangler.yaml",
    ) -> Path:
        if text is None:
            text = MINIMAL.format(
                source=json.dumps(source),
                target_dsn=f"dsn: {json.dumps(target)}\n      " if target else "",
                strategy=strategy,
            )
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture(scope="session")
def produced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where every test that runs the command line leaves what strangler produced (its
    output, journals and reports) and the secrets it was given, for the secret grep that
    runs after the whole suite (``tests/test_zz_secret_grep.py``)."""
    return Path(os.environ.get("STRANGLER_PRODUCED") or tmp_path_factory.mktemp("produced"))


# Secrets a test hands strangler: DSN passwords in its spec files and environment values
# whose names say they are secret. Shorter strings would match by chance.
_DSN_PASSWORD = re.compile(r"://[^:/@\s\"']+:([^@\s\"']+)@|password=([^\s\"']+)")
_SECRET_VAR = re.compile(r"PASSWORD|SECRET|TOKEN|_PW$|^PW$", re.I)
MIN_SECRET = 6


def secrets_in(texts: list[str], env: dict[str, str]) -> set[str]:
    found = {v for k, v in env.items() if _SECRET_VAR.search(k)}
    for text in texts:
        for m in _DSN_PASSWORD.finditer(text):
            found.add(unquote(m.group(1) or m.group(2)))
    return {s for s in found if len(s) >= MIN_SECRET}


def leaks(secrets: set[str], where: dict[str, bytes]) -> list[str]:
    """``name: secret…`` for each produced file or output that holds a secret."""
    return [
        f"{name}: {secret[:3]}…"
        for name, blob in where.items()
        for secret in secrets
        if secret.encode() in blob or quote(secret).encode() in blob
    ]


@pytest.fixture
def cli(
    tmp_path: Path, produced: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., CliResult]]:
    """Run ``strangler …`` in a subprocess, as an operator would.

    Fails the test when a foreign exception (psycopg, sqlite3, OSError, …) reached the
    command line's last resort instead of being converted where it entered strangler, and
    when a password it was given (in a spec's DSN, or an environment variable named like a
    secret) appears in anything it printed or wrote: output, journal, report (issue 15)."""
    escapes = tmp_path / "escaped-exceptions.log"
    outputs: list[bytes] = []
    given: dict[str, str] = {}

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> CliResult:
        given.update(env or {})
        full_env = {
            **os.environ,
            "COLUMNS": "200",
            "STRANGLER_ESCAPES": str(escapes),
            **(env or {}),
        }
        done = subprocess.run(
            [sys.executable, "-m", "strangler", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=full_env,
            timeout=timeout,
            check=False,
        )
        outputs.append(f"$ strangler {' '.join(args)}\n{done.stdout}\n{done.stderr}\n".encode())
        assert "Traceback (most recent call last)" not in done.stderr, done.stderr
        return CliResult(done.returncode, done.stdout, done.stderr)

    yield run
    if escapes.exists():
        pytest.fail("foreign exceptions reached the command line: " + escapes.read_text())
    if not outputs:
        return
    specs = [p.read_text(errors="replace") for p in tmp_path.rglob("*.yaml") if p.is_file()]
    secrets = secrets_in(specs, given)
    made = {"output": b"".join(outputs)}
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in _PRODUCED and ".strangler" not in path.parts:
            made[str(path.relative_to(tmp_path))] = path.read_bytes()
    keep = produced / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-150:]
    keep.mkdir(parents=True, exist_ok=True)
    for name, blob in made.items():
        (keep / (name.replace("/", "__") + ".produced")).write_bytes(blob)
    (keep / "secrets.given").write_text("\n".join(sorted(secrets)))
    found = leaks(secrets, made)
    if found:
        pytest.fail(
            "a password strangler was given appears in what it produced: " + "; ".join(found)
        )


@pytest.fixture
def demo_dir() -> Iterator[Path]:
    """A folder for a demo's servers that their system user can reach.

    Not under pytest's tmp_path: pytest keeps its own base folder mode 0700 and resets it at
    every session start, so a server user cannot traverse it reliably.
    """
    root = Path(tempfile.mkdtemp(prefix="strangler-demo-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root / "demo"
    finally:
        for meta in root.glob("demo/pg-*.json"):
            from strangler.pg.embedded import PgInstance

            PgInstance.create(meta.parent / meta.stem).stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
