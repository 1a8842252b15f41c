"""One trial's world: fresh databases, the demo's monolith, a spec, and the way to drive it.

Names are unique per world (service, databases, role), because replication slots and roles
are shared by every database of a server. The spec names the service's role with a password
from the environment, so that the secret grep has a secret to look for; strangler reaches the
servers only through the fault proxies, the harness directly. The journal lives on the
campaign's journal disk (a small tmpfs) when there is one.

:meth:`World.prepare` brings the service to the phase a step starts from through the library
(:func:`strangler.run_until_done`), in this process: the step under test runs as the command
line, in a child process that a fault can kill.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from strangler.demo.monolith import build_monolith
from strangler.journal import Journal
from strangler.phases import Phase
from strangler.spec import Spec, load_spec
from strangler.steps.preflight import attest
from strangler.steps.run import run_until_done
from strangler.steps.runbook import Runbook
from strangler.steps.types import RunOptions
from tests.faults.backends import ROUTE, Backend
from tests.faults.load import PgbenchLoad
from tests.faults.mounts import Tmpfs
from tests.faults.servers import Servers

__all__ = ["PASSWORD_VAR", "SERVICE_PASSWORD", "TABLES", "World", "WorldConfig"]

TABLES = ("orders", "order_items", "order_status_history")
PASSWORD_VAR = "FAULTS_SERVICE_PASSWORD"
NO_REQUESTS_YET = "no requests to compare error rates"  # a decommission check's metric item
# A secret strangler is given and must never print, journal or log (the secret grep's needle).
SERVICE_PASSWORD = os.environ.setdefault(PASSWORD_VAR, "svc-" + uuid.uuid4().hex[:16])

SPEC = """\
version: 1
state: sqlite:///{journal}
source: {{ dsn: "{source}", schema: public }}
services:
  {service}:
    tables: [orders, order_items, order_status_history]
    target:
      {target_dsn}schema: order_service
      role: {{ name: {role}, password: "${{{password_var}}}" }}
    strategy: {strategy}
{sync}{traffic}    decommission: {{ stable_for: 1s, write_window: 1s, drop_old_tables_after: 2s,
                     archive_dir: archive, max_latency_ratio: 5 }}
"""

TRAFFIC = """\
    traffic:
      route: "{route}"
      router: {router}
{metrics}      steps: [50, 100]
      bake: 4s
      final_bake: 4s
      interval: 2s
      failed_intervals: 2
      gates:
        - {{ metric: request_count, min: 3 }}
        - {{ metric: error_rate, max: 0.05 }}
"""


@dataclass(frozen=True)
class WorldConfig:
    """What kind of world a step needs."""

    strategy: str = "online"  # copy | online
    same_instance: bool = False
    traffic: bool = False  # a traffic: section with the campaign's backend
    orders: int = 300


@dataclass
class World:
    servers: Servers
    config: WorldConfig
    home: Path  # spec, archive, outputs
    journal_path: Path
    backend: Backend | None = None
    journal_disk: Tmpfs | None = None
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    load: PgbenchLoad | None = None

    def __post_init__(self) -> None:
        self.service = f"s{self.tag}"
        self.role = f"s{self.tag}_app"
        self.source_db = f"src_{self.tag}"
        self.target_db = self.source_db if self.config.same_instance else f"dst_{self.tag}"
        self.spec_path = self.home / "strangler.yaml"  # strangler's: through the fault proxies
        # The harness's own (same journal, same names): straight to the servers and routers.
        # A fault never touches it, and a proxy running in this process never carries its
        # connections (a blocking libpq call holding the GIL would starve the proxy's threads).
        self.harness_spec_path = self.home / "harness.yaml"
        self.outputs = self.home / "outputs"

    # ------------------------------------------------------------------------ set up

    @property
    def target_server(self) -> Any:
        return self.servers.source if self.config.same_instance else self.servers.target

    def create(self) -> World:
        self.home.mkdir(parents=True, exist_ok=True)
        self.outputs.mkdir(exist_ok=True)
        self.journal_path.parent.mkdir(parents=True, exist_ok=True)
        self.servers.source.create_database(self.source_db)
        if not self.config.same_instance:
            self.servers.target.create_database(self.target_db)
        with self.servers.source.connect(self.source_db) as conn:
            build_monolith(conn, orders=self.config.orders)
            # The monolith's old code path (a view over orders) goes before the old tables do.
            conn.execute("DROP VIEW public.customer_order_totals")
        self.spec_path.write_text(self._spec_text(direct=False))
        self.harness_spec_path.write_text(self._spec_text(direct=True))
        return self

    def _spec_text(self, *, direct: bool) -> str:
        traffic = ""
        if self.config.traffic and self.backend is not None:
            metrics = self.backend.metrics_yaml(direct=direct)
            traffic = TRAFFIC.format(
                route=ROUTE,
                router=self.backend.router_yaml(direct=direct),
                metrics=f"      metrics: {metrics}\n" if metrics else "",
            )
        target = (
            ""
            if self.config.same_instance
            else self.servers.target.dsn(self.target_db, direct=direct)
        )
        return SPEC.format(
            journal=self.journal_path,
            source=self.servers.source.dsn(self.source_db, direct=direct),
            service=self.service,
            target_dsn=f'dsn: "{target}"\n      ' if target else "",
            role=self.role,
            password_var=PASSWORD_VAR,
            strategy=self.config.strategy,
            sync="    sync: { max_retained_wal: 256MB, max_lag: 256MB }\n"
            if self.config.strategy == "online"
            else "",
            traffic=traffic,
        )

    def spec(self) -> Spec:
        """The harness's spec: the same service and journal, reached directly."""
        if self.backend is not None:
            os.environ.update(self.backend.env_for(direct=True))
        return load_spec(self.harness_spec_path)

    @contextlib.contextmanager
    def runbook(self, command: str = "faults harness") -> Iterator[Runbook]:
        spec = self.spec()
        with Journal(spec.state_url(), operator="harness", command=command) as journal:
            yield Runbook(spec, journal, self.service)

    def env(self) -> dict[str, str]:
        """The environment strangler's command line runs in."""
        out = dict(os.environ)
        out[PASSWORD_VAR] = SERVICE_PASSWORD
        out["COLUMNS"] = "200"
        if self.backend is not None:
            out.update(self.backend.env_for(direct=False))
        return out

    def prepare(self, until: Phase) -> None:
        """Advance the service to ``until`` with the library (attesting when asked)."""
        if until is Phase.PLANNED:
            return
        with contextlib.ExitStack() as stack:
            if self.backend is not None:
                self.backend.start_load()
                stack.callback(self.backend.stop_load)
            for _ in range(20):
                with self.runbook("prepare") as rb:
                    result = run_until_done(
                        rb, until=until, options=RunOptions(jobs=2, drain_timeout=60), max_nap=0.3
                    )
                    if result.status == "done":
                        return
                    if result.waiting is not None and result.waiting.reason == "attestation":
                        attest(rb, "no_incident", "faults harness: nothing happened")
                        continue
                    if result.error is not None and NO_REQUESTS_YET in result.error.message:
                        # The load began with this preparation: the metric source has not
                        # scraped a request of it yet.
                        time.sleep(1.0)
                        continue
                raise RuntimeError(
                    f"could not prepare {self.service} to {until}: {result.to_dict()}"
                )

    # -------------------------------------------------------------------------- load

    def start_load(self, where: str) -> None:
        """pgbench on ``where``: ``monolith`` or ``service`` (the moved tables on that side),
        ``staying`` (a monolith table that stays), or ``none``."""
        self.stop_load()
        if where == "none":
            return
        if where == "service":
            dsn, target = self.target_server.dsn(self.target_db, direct=True), "order_service"
        else:
            dsn, target = (
                self.servers.source.dsn(self.source_db, direct=True),
                ("public" if where == "monolith" else "staying"),
            )
        self.load = PgbenchLoad(dsn, target, self.home / "load").start()

    def stop_load(self) -> None:
        if self.load is not None:
            self.load.stop()
            self.load = None

    # --------------------------------------------------------------------- commands

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "strangler", *args, "-f", str(self.spec_path)]

    def popen(self, *args: str, log: str) -> subprocess.Popen[str]:
        """Start ``strangler <args>`` as an operator would; its output goes to ``log``."""
        out = (self.outputs / log).open("w")
        return subprocess.Popen(
            self.command(*args),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.home,
            env=self.env(),
        )

    # ------------------------------------------------------------------------ teardown

    def drop(self) -> None:
        self.stop_load()
        with contextlib.suppress(Exception):
            self.servers.source.drop_database(self.source_db)
        if not self.config.same_instance:
            with contextlib.suppress(Exception):
                self.servers.target.drop_database(self.target_db)
        for server in {id(s): s for s in (self.servers.source, self.target_server)}.values():
            with contextlib.suppress(Exception), server.connect() as conn:
                for name in (self.role,):
                    conn.execute(
                        psycopg.sql.SQL("DROP ROLE IF EXISTS {}").format(
                            psycopg.sql.Identifier(name)
                        )
                    )
