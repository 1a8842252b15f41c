"""One trial of the campaign: prepare, start the step, strike, heal, recover, check.

A :class:`Campaign` owns what trials share (the two servers behind their fault proxies, the
journal disk, the traffic backends) and the uninterrupted ("calm") run of each step and
world kind, which every trial of that pair is compared with. :meth:`Campaign.trial`:

1. a fresh world, prepared to the phase the step starts from, pgbench writing;
2. the fault's ``before``; the step's command in a child process; the fault's ``during``;
3. the child's end (a hang past the deadline is killed and counted as a failure); ``heal``;
4. the documented recovery: the same command again until it ends as the calm run did;
   when strangler says a step never recorded its outcome, ``strangler resolve`` first (the
   command its error names);
5. load stopped; the checks of :mod:`tests.faults.checks`: rows equal on both sides by our
   own digest, the same end state as the calm run, the router agreeing with the journal,
   no traceback and no secret in anything strangler printed.
"""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from strangler.pg.sync import cdc
from strangler.steps.sync import direction_in
from strangler.steps.wiring import sync_route
from tests.faults import checks
from tests.faults.backends import AlbBackend, Backend, HaproxyBackend, available
from tests.faults.faults import Fault, Moment
from tests.faults.mounts import Tmpfs, can_mount
from tests.faults.servers import Servers
from tests.faults.steps import StepCase
from tests.faults.world import SERVICE_PASSWORD, World, WorldConfig

__all__ = ["Calm", "Campaign", "TrialResult", "config_key"]

STEP_DEADLINE = 300.0  # seconds a step's process may take before it counts as hung


def config_key(config: WorldConfig, backend: str | None = None) -> str:
    key = f"{config.strategy}-{'same' if config.same_instance else 'cross'}"
    return f"{key}-{backend}" if config.traffic and backend else key


@dataclass
class Calm:
    """The uninterrupted run a step's trials are compared with."""

    step: str
    config: str
    exit_code: int
    seconds: float
    end_phase: str
    signature: dict[str, Any]
    problems: list[str] = field(default_factory=list)


@dataclass
class TrialResult:
    step: str
    fault: str
    config: str
    index: int
    seed: int
    injected: str = ""
    first_exit: int | None = None
    recovery: list[str] = field(default_factory=list)
    recovered: bool = False
    rows_lost: int = 0
    rows_doubled: int = 0
    tables_differing: list[str] = field(default_factory=list)
    state_diff: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    home: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.recovered
            and not self.rows_lost
            and not self.rows_doubled
            and not self.tables_differing
            and not self.state_diff
            and not self.problems
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


_HINTED = re.compile(r"'(strangler [^']+)'")


class Campaign:
    """The shared parts of every trial under ``root``; :meth:`close` when done."""

    def __init__(self, root: Path, *, backends: tuple[str, ...] = ("haproxy", "alb")) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        self.no_disks = can_mount(root)
        self.servers = Servers(root / "servers", target_disk_mb=None if self.no_disks else 640)
        self.journal_disk = None if self.no_disks else Tmpfs(root / "journal", 24)
        self.backend_kinds = tuple(k for k in backends if available(k) is None)
        self._backends: dict[str, Backend] = {}
        self.calms: dict[str, Calm] = {}
        self.secrets = [SERVICE_PASSWORD, self.servers.source.instance.password]
        self.secrets.append(self.servers.target.instance.password)

    # ------------------------------------------------------------------- worlds

    def backend(self, kind: str) -> Backend:
        if kind not in self._backends:
            home = self.root / f"backend-{kind}"
            self._backends[kind] = HaproxyBackend(home) if kind == "haproxy" else AlbBackend(home)
        return self._backends[kind]

    def backend_for(self, config: WorldConfig, index: int) -> str | None:
        if not config.traffic or not self.backend_kinds:
            return None
        return self.backend_kinds[index % len(self.backend_kinds)]

    def world(self, step: StepCase, config: WorldConfig, backend: str | None) -> World:
        self.servers.heal()
        home = self.root / "worlds" / f"{step.name}-{time.monotonic_ns()}"
        journal_dir = (self.journal_disk.path if self.journal_disk else home) / home.name
        world = World(
            self.servers,
            config,
            home,
            journal_dir / "state.db",
            backend=self.backend(backend) if backend else None,
            journal_disk=self.journal_disk,
        )
        if world.backend is not None:
            world.backend.reset()
        return world.create()

    def close(self) -> None:
        for backend in self._backends.values():
            with contextlib.suppress(Exception):
                backend.close()
        self.servers.close()
        if self.journal_disk is not None:
            self.journal_disk.unmount()

    # ---------------------------------------------------------------------- runs

    def _prepared(self, step: StepCase, config: WorldConfig, backend: str | None) -> World:
        world = self.world(step, config, backend)
        world.prepare(step.start_for(config))
        if step.wait_grace:
            time.sleep(step.wait_grace)
        return world

    def _start(self, world: World, step: StepCase) -> None:
        world.start_load(step.load_for(world.config))
        if world.backend is not None and world.config.traffic:
            world.backend.service.failure_rate = 0.5 if step.failing_service else 0.0
            world.backend.start_load()

    def calm(self, step: StepCase, config: WorldConfig, backend: str | None) -> Calm:
        key = f"{step.name}|{config_key(config, backend)}"
        if key in self.calms:
            return self.calms[key]
        world = self._prepared(step, config, backend)
        try:
            before = self._before(world, step)
            self._start(world, step)
            began = time.monotonic()
            child = world.popen(*step.command(world.service), log="calm.log")
            code = _wait(child)
            seconds = time.monotonic() - began
            result = TrialResult(step.name, "none", config_key(config, backend), 0, 0)
            self._check(world, step, before, result)
            signature = checks.signature(world)
            problems = list(result.problems) + checks.left_behind(world, signature)
            if code != step.calm_exit:
                problems.append(f"the uninterrupted run exited {code}, not {step.calm_exit}")
            if result.rows_lost or result.rows_doubled or result.tables_differing:
                problems.append(f"the uninterrupted run's data differ: {result.tables_differing}")
            calm = Calm(
                step.name,
                config_key(config, backend),
                code,
                seconds,
                str(signature.values["journal.phase"]),
                signature.values,
                problems,
            )
        finally:
            world.drop()
            shutil.rmtree(world.journal_path.parent, ignore_errors=True)
        self.calms[key] = calm
        return calm

    def trial(self, step: StepCase, fault: Fault, index: int, seed: int) -> TrialResult:
        configs = [c for c in step.configs if fault.applies(step, c)] or list(step.configs)
        config = configs[index % len(configs)]
        backend = self.backend_for(config, index // len(configs))
        result = TrialResult(step.name, fault.name, config_key(config, backend), index, seed)
        try:
            calm = self.calm(step, config, backend)
        except Exception as exc:  # counted as the harness's failure; the campaign goes on
            result.problems.append(f"harness: the uninterrupted run: {type(exc).__name__}: {exc}")
            return result
        if calm.problems:
            result.problems.append(f"the uninterrupted run failed: {calm.problems}")
            return result
        began = time.monotonic()
        try:
            world = self._prepared(step, config, backend)
        except Exception as exc:  # counted as the harness's failure; the campaign goes on
            result.problems.append(f"harness: preparing the world: {type(exc).__name__}: {exc}")
            result.seconds = round(time.monotonic() - began, 1)
            return result
        result.home = str(world.home)
        moment = Moment(world, step, random.Random(seed), calm.seconds, calm.end_phase)
        try:
            before = self._before(world, step)
            self._start(world, step)
            try:
                fault.before(moment)
                moment.child = world.popen(*step.command(world.service), log="attempt-0.log")
                result.injected = fault.during(moment)
                result.first_exit = _wait(moment.child)
            finally:
                fault.heal(moment)
                self.servers.heal()
                if world.backend is not None:
                    world.backend.heal()
            result.recovered = self._recover(world, step, calm, result)
            self._check(world, step, before, result)
            got = checks.signature(world)
            result.state_diff = got.diff(checks.Signature(calm.signature))
            result.problems += checks.left_behind(world, got)
        except Exception as exc:  # the harness itself failed: count it, keep the world
            result.problems.append(f"harness: {type(exc).__name__}: {exc}")
        finally:
            world.stop_load()
            if world.backend is not None:
                world.backend.stop_load()
            result.seconds = round(time.monotonic() - began, 1)
            if result.ok:
                world.drop()
                shutil.rmtree(world.home, ignore_errors=True)
                shutil.rmtree(world.journal_path.parent, ignore_errors=True)
            else:
                self._keep(world)
        return result

    def _keep(self, world: World) -> None:
        """A failed trial's evidence stays: journal copied beside its outputs; databases too."""
        with contextlib.suppress(OSError):
            for f in world.journal_path.parent.glob("state.db*"):
                shutil.copy(f, world.home / f.name)
            shutil.rmtree(world.journal_path.parent, ignore_errors=True)

    # ------------------------------------------------------------------ recovery

    def _recover(self, world: World, step: StepCase, calm: Calm, result: TrialResult) -> bool:
        code = result.first_exit
        command = step.command(world.service)
        for attempt in range(1, 7):
            text = _last_output(world)
            # An error is followed, as an operator would, even when the journal already shows
            # where the calm run ended (a sync step leaves the phase as it was, so the journal
            # alone cannot tell that it failed).
            asked = attempt == 1 and code != calm.exit_code and "error:" in text
            if code == calm.exit_code or (self._ended_as_calm(world, calm) and not asked):
                return True
            if "never recorded an outcome" in text:
                resolve = ["resolve", world.service, "--reason", "fault campaign: inspected"]
                rcode = _wait(world.popen(*resolve, log=f"resolve-{attempt}.log"))
                result.recovery.append(f"strangler resolve → {rcode}")
            elif "is locked by" in text:
                time.sleep(1.0)
            elif checks := [a for a in _hinted(text, ("decommission",)) if a[-1] == "--check"]:
                # The evidence the error names: a decommission check (the write guard back
                # on, its window anew), after the world's write window (1s), then the step.
                time.sleep(1.2)
                hcode = _wait(world.popen(*checks[0], log=f"hinted-{attempt}-check.log"))
                result.recovery.append(f"strangler {' '.join(checks[0][:3])} → {hcode}")
            elif "was invalidated by the server" in text and "--rebuild" in text:
                # Reverse: the way back the error names (sync --rebuild, then sync to catch
                # up), then the step again.
                for args in _hinted(text, ("sync",)):
                    args += ["--yes"] if "--rebuild" in args else ["--until-caught-up"]
                    hcode = _wait(world.popen(*args, log=f"hinted-{attempt}-{args[-1][2:]}.log"))
                    result.recovery.append(f"strangler {' '.join(args[:3])} → {hcode}")
            elif "was invalidated by the server" in text and "copies again" in text:
                # Forward: the way back the error names (rollback --schema, copy again), then
                # the runbook up to where the uninterrupted run ended.
                for args in _hinted(text, ("rollback", "copy")):
                    if args[0] == "rollback":
                        args += ["--reason", "fault campaign: slot invalidated", "--yes"]
                    hcode = _wait(world.popen(*args, log=f"hinted-{attempt}-{args[0]}.log"))
                    result.recovery.append(f"strangler {' '.join(args[:3])} → {hcode}")
                if step.args[0] not in ("copy", "sync"):
                    command = ["run", world.service, "--wait", "--until", calm.end_phase]
            child = world.popen(*command, log=f"attempt-{attempt}.log")
            code = _wait(child)
            result.recovery.append(f"strangler {' '.join(command[:1])} again → {code}")
        return code == calm.exit_code

    @staticmethod
    def _ended_as_calm(world: World, calm: Calm) -> bool:
        """The journal is where the uninterrupted run ended (phase, weight, no open step):
        the step finished before the fault ended its process, and there is nothing to redo."""
        now = checks.journal_state(world)
        return (
            now["phase"] == calm.end_phase
            and now["weight"] == calm.signature.get("journal.weight")
            and not now["dangling"]
        )

    # -------------------------------------------------------------------- checks

    def _before(self, world: World, step: StepCase) -> dict[str, str] | None:
        if step.data != "service":
            return None
        with world.target_server.connect(world.target_db) as conn:
            return checks.digest(conn, "order_service")

    def _check(
        self, world: World, step: StepCase, before: dict[str, str] | None, result: TrialResult
    ) -> None:
        world.stop_load()
        if world.backend is not None:
            world.backend.stop_load()
        old, new = self._data(world, step, before, result)
        if step.data != "none":
            for table in old or {}:
                a = old.get(table, "0:-") if old else "0:-"
                b = (new or {}).get(table, "0:-")
                if a == b:
                    continue
                na, nb = int(a.split(":")[0]), int(b.split(":")[0])
                result.rows_lost += max(0, na - nb)
                result.rows_doubled += max(0, nb - na)
                result.tables_differing.append(table)
            if old is None or new is None:
                result.tables_differing.append("(a side's tables are missing)")
        disagreement = checks.router_agrees(world)
        if disagreement:
            result.problems.append(disagreement)
        for log in sorted(world.outputs.glob("*.log")):
            text = log.read_text(errors="replace")
            if "Traceback (most recent call last)" in text:
                result.problems.append(f"{log.name}: a traceback")
            for secret in self.secrets:
                if secret and secret in text:
                    result.problems.append(f"{log.name}: a password was printed")
        for f in world.journal_path.parent.glob("state.db*"):
            if not f.is_file():
                continue
            blob = f.read_bytes()
            if any(s and s.encode() in blob for s in self.secrets):
                result.problems.append(f"{f.name}: a password in the journal")

    def _data(
        self, world: World, step: StepCase, before: dict[str, str] | None, result: TrialResult
    ) -> tuple[dict[str, str] | None, dict[str, str] | None]:
        """(what the service must hold, what it holds) for the step's data check."""
        if step.data == "none":
            return None, None
        if step.data == "sides" and world.config.strategy == "online":
            try:
                _drain(world)
            except Exception as exc:
                result.problems.append(f"draining sync after the trial failed: {exc}")
        with world.target_server.connect(world.target_db) as dst:
            new = checks.digest(dst, "order_service")
        if step.data == "service":
            return before, new
        with world.servers.source.connect(world.source_db) as src:
            old = checks.digest(src, "public")
            if old is None and step.data == "retired":
                old = checks.digest(src, f"retired_{world.service}")
        return old, new


def _drain(world: World, timeout: float = 120) -> None:
    """Apply everything committed so far in the direction the journal's phase says, without
    journaling anything (the mechanism, not the step)."""
    with world.runbook("drain") as rb:
        direction = direction_in(rb.phase)
    if direction is None:
        return
    route = sync_route(world.spec(), world.service, direction)  # the harness's: direct
    stop = threading.Event()
    timer = threading.Timer(timeout, stop.set)
    timer.start()
    try:
        cdc.run(route, stop=stop, until_caught_up=True)
    finally:
        timer.cancel()
    if stop.is_set():
        raise TimeoutError(f"sync did not catch up within {timeout:g}s")


def _wait(child: subprocess.Popen[str]) -> int:
    try:
        return child.wait(timeout=STEP_DEADLINE)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        return -999  # hung


def _hinted(text: str, verbs: tuple[str, ...]) -> list[list[str]]:
    """The ``'strangler …'`` commands a hint names, in its order, those of ``verbs`` only."""
    hints = [line for line in text.splitlines() if line.strip().startswith("hint:")]
    found = re.findall(r"'strangler ([^']+)'", "\n".join(hints[-1:]))
    return [cmd.split() for cmd in found if cmd.split()[0] in verbs]


def _last_output(world: World) -> str:
    logs = sorted(world.outputs.glob("attempt-*.log"), key=lambda p: p.stat().st_mtime)
    return logs[-1].read_text(errors="replace") if logs else ""
