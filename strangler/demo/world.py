"""The rehearsal world: two embedded PostgreSQL servers, the sample monolith, and a spec.

Passwords stay out of the spec: the DSNs name a libpq ``passfile`` beside the data, and the
service role's password comes from ``${ORDER_SERVICE_DB_PASSWORD}``, kept in ``env`` next to
the spec (``set -a; . .strangler/demo/env; set +a`` to use the spec by hand).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console

from strangler.demo.monolith import build_monolith
from strangler.journal import Journal
from strangler.pg.embedded import PgInstance
from strangler.spec import Spec, load_spec

__all__ = ["SERVICE", "DemoOptions", "World", "demo_world"]

SERVICE = "order_service"

SPEC_TEXT = """\
# Written by `strangler demo`: the runbook's order_service, on two embedded servers.
version: 1
state: sqlite:///state.db
source:
  dsn: "{monolith}"
  schema: public
services:
  order_service:
    tables: [orders, order_items, order_status_history]
    target:
      dsn: "{service}"
      schema: order_service
      role: {{ name: order_service_app, password: "${{ORDER_SERVICE_DB_PASSWORD}}" }}
    strategy: {strategy}
    foreign_keys: {{ leaving: drop }}
"""


@dataclass(frozen=True)
class DemoOptions:
    directory: Path = Path(".strangler/demo")
    scale: int = 100_000
    strategy: str = "online"
    faulty: bool = False
    fast_forward: bool = False
    keep: bool = False
    fresh: bool = True


@dataclass
class World:
    options: DemoOptions
    monolith: PgInstance
    service: PgInstance
    spec_path: Path
    console: Console
    counts: dict[str, int] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    # What an act started for the acts after it (the sample apps and the proxy), stopped
    # when the demo ends, last started first.
    cleanups: list[Callable[[], object]] = field(default_factory=list)

    @property
    def spec(self) -> Spec:
        return load_spec(self.spec_path)

    def journal(self, command: str = "strangler demo") -> Journal:
        return Journal(self.spec.state_url(), operator="demo", command=command)

    def monolith_dsn(self) -> str:
        return self.spec.source.dsn

    def service_dsn(self) -> str:
        return self.spec.target_dsn("order_service")

    def connect_monolith(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.monolith_dsn(), autocommit=True)

    def connect_service(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.service_dsn(), autocommit=True)


def _passfile_dsn(inst: PgInstance, dbname: str, passfile: Path) -> str:
    return f"postgresql://postgres@127.0.0.1:{inst.port}/{dbname}?passfile={passfile}"


def _write_passfile(path: Path, instances: list[PgInstance]) -> None:
    lines = [f"127.0.0.1:{i.port}:*:postgres:{i.password}" for i in instances]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


@contextmanager
def demo_world(options: DemoOptions, console: Console) -> Iterator[World]:
    """Start (or reuse) the servers, build the monolith and the spec; stop servers after."""
    root = options.directory.resolve()
    root.mkdir(parents=True, exist_ok=True)
    monolith = PgInstance.create(root / "pg-monolith")
    service = PgInstance.create(root / "pg-order-service")
    if options.fresh:
        for inst in (monolith, service):
            inst.destroy()
        monolith = PgInstance.create(root / "pg-monolith")
        service = PgInstance.create(root / "pg-order-service")
        for leftover in ("state.db", "state.db-wal", "state.db-shm"):
            (root / leftover).unlink(missing_ok=True)
    with console.status("starting two embedded PostgreSQL servers"):
        monolith.start()
        service.start()
    try:
        passfile = root / "pgpass"
        _write_passfile(passfile, [monolith, service])
        env_file = root / "env"
        if not env_file.exists():
            env_file.write_text(f"ORDER_SERVICE_DB_PASSWORD={secrets.token_urlsafe(18)}\n")
            env_file.chmod(0o600)
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            os.environ.setdefault(key, value)
        spec_path = root / "strangler.yaml"
        spec_path.write_text(
            SPEC_TEXT.format(
                monolith=_passfile_dsn(monolith, "monolith", passfile),
                service=_passfile_dsn(service, "order_service", passfile),
                strategy=options.strategy,
            )
        )
        world = World(options, monolith, service, spec_path, console)
        world.facts["passfile"] = str(passfile)
        with psycopg.connect(monolith.dsn(), autocommit=True) as admin:
            exists = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = 'monolith'"
            ).fetchone()
        if not exists:
            monolith.create_database("monolith")
            service.create_database("order_service")
            building = f"building the sample monolith ({options.scale:,} orders)"
            with console.status(building) as shown, world.connect_monolith() as conn:

                def step(table: str, i: int, n: int) -> None:
                    shown.update(f"{building}: {table} ({i}/{n})")

                world.counts = build_monolith(conn, orders=options.scale, progress=step)
        try:
            yield world
        finally:
            for stop in reversed(world.cleanups):
                stop()
    finally:
        if not options.keep:
            monolith.stop()
            service.stop()
