"""The steps under test: where each starts, the command that runs it, and what it must leave.

Each :class:`StepCase` is one runbook step as an operator runs it (``strangler …`` in a
child process), prepared to the phase it starts from, under write load, with the data check
that proves nothing was lost or doubled after it:

- ``sides``: sync drained in the direction the service is in, then each moved table's digest
  equal on the monolith and in the service schema (strategy ``copy``: equal as copied);
- ``retired``: the old tables (in ``public`` or already moved to ``retired_<service>``) equal
  the service's tables, which did not change;
- ``service``: the service's tables unchanged by the step (the old ones are gone);
- ``none``: the schema is gone; the signature says whether it went cleanly.

Trials rotate through ``configs`` (strategy, same or cross instance), so "copy" covers both
strategies on one and two servers, and its online configs are the online copy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from strangler.phases import Phase
from tests.faults.world import WorldConfig

__all__ = ["STEPS", "StepCase", "step_named"]

COPY_SAME = WorldConfig(strategy="copy", same_instance=True)
COPY_CROSS = WorldConfig(strategy="copy")
ONLINE_SAME = WorldConfig(strategy="online", same_instance=True)
ONLINE_CROSS = WorldConfig(strategy="online")
TRAFFIC = WorldConfig(strategy="online", traffic=True)
TRAFFIC_COPY = WorldConfig(strategy="copy", traffic=True)


@dataclass(frozen=True)
class StepCase:
    name: str
    configs: tuple[WorldConfig, ...]
    start: Phase  # for strategy online; ``start_copy`` for strategy copy
    args: tuple[str, ...]  # after ``strangler``; ``{service}`` is filled in
    data: str  # sides | retired | service | none
    start_copy: Phase | None = None
    calm_exit: int = 0
    failing_service: bool = False  # the service answers 5xx: its gates fail
    wait_grace: float = 0.0  # seconds to let pass after preparing (a grace period)
    touches: frozenset[str] = field(default_factory=lambda: frozenset({"source", "target"}))
    description: str = ""

    def start_for(self, config: WorldConfig) -> Phase:
        return self.start_copy if config.strategy == "copy" and self.start_copy else self.start

    def load_for(self, config: WorldConfig) -> str:
        """Where pgbench writes during the step (see :mod:`tests.faults.load`)."""
        if self.data in ("retired", "service") or config.strategy == "copy":
            return "staying"
        if self.name in ("sync-reverse", "rollback-writes", "shift", "traffic-rollback"):
            return "service"
        return "monolith"

    def command(self, service: str) -> list[str]:
        return [a.format(service=service) for a in self.args]


STEPS: tuple[StepCase, ...] = (
    StepCase(
        "copy",
        (COPY_CROSS, ONLINE_CROSS, COPY_SAME, ONLINE_SAME),
        Phase.PLANNED,
        ("copy", "{service}"),
        "sides",
        description="schema, rows, keys (both strategies; same and cross instance; online "
        "copies under the slot's snapshot)",
    ),
    StepCase(
        "sync-forward",
        (ONLINE_CROSS, ONLINE_SAME),
        Phase.COPIED,
        ("sync", "{service}", "--until-caught-up"),
        "sides",
        description="apply the monolith's changes to the service schema",
    ),
    StepCase(
        "verify",
        (ONLINE_CROSS, COPY_CROSS, ONLINE_SAME),
        Phase.SYNCING,
        ("verify", "{service}", "--recheck", "3"),
        "sides",
        start_copy=Phase.COPIED,
        description="chunk hashes and bisection, rechecked under sync",
    ),
    StepCase(
        "cutover",
        (ONLINE_CROSS, ONLINE_SAME),
        Phase.VERIFIED,
        ("cutover", "{service}"),
        "sides",
        description="gate, drain, sequences, reverse slot, open",
    ),
    StepCase(
        "sync-reverse",
        (ONLINE_CROSS, ONLINE_SAME),
        Phase.WRITES_CUT_OVER,
        ("sync", "{service}", "--until-caught-up"),
        "sides",
        description="apply the service's changes to the monolith's tables",
    ),
    StepCase(
        "rollback-writes",
        (ONLINE_CROSS, ONLINE_SAME),
        Phase.WRITES_CUT_OVER,
        ("rollback", "{service}", "--writes", "--reason", "fault campaign", "--yes"),
        "sides",
        description="writes back to the monolith, forward sync again",
    ),
    StepCase(
        "rollback-schema",
        (ONLINE_CROSS, COPY_CROSS, COPY_SAME),
        Phase.SYNCING,
        ("rollback", "{service}", "--schema", "--reason", "fault campaign", "--yes"),
        "none",
        start_copy=Phase.COPIED,
        description="drop the service schema, role, slot and publication",
    ),
    StepCase(
        "shift",
        (TRAFFIC,),
        Phase.WRITES_CUT_OVER,
        ("shift", "{service}", "--auto", "--yes"),
        "sides",
        touches=frozenset({"source", "target", "router", "metrics"}),
        description="the gated walk 50 % → 100 % with a bake at each step",
    ),
    StepCase(
        "traffic-rollback",
        (TRAFFIC,),
        Phase.WRITES_CUT_OVER,
        ("shift", "{service}", "--auto", "--yes"),
        "sides",
        calm_exit=1,
        failing_service=True,
        touches=frozenset({"source", "target", "router", "metrics"}),
        description="a failing service: the gates fail and traffic goes back to 0 % by itself",
    ),
    StepCase(
        "decommission-archive",
        (TRAFFIC, TRAFFIC_COPY),
        Phase.STABLE,
        ("decommission", "{service}", "--yes"),
        "retired",
        touches=frozenset({"source", "target", "router"}),
        description="old route removed, old tables archived (pg_dump + sha256) and retired",
    ),
    StepCase(
        "decommission-drop",
        (TRAFFIC, TRAFFIC_COPY),
        Phase.OLD_PATH_REMOVED,
        ("decommission", "{service}", "--yes"),
        "service",
        wait_grace=2.5,
        touches=frozenset({"source", "target"}),
        description="archive re-checked, retired tables dropped",
    ),
    StepCase(
        "run",
        (ONLINE_CROSS, ONLINE_SAME),
        Phase.PLANNED,
        ("run", "{service}", "--wait", "--until", "writes_cut_over"),
        "sides",
        description="strangler run: copy, sync, verify and cutover in one command",
    ),
)


def step_named(name: str) -> StepCase:
    for step in STEPS:
        if step.name == name:
            return step
    raise KeyError(f"no step {name!r}; steps: {', '.join(s.name for s in STEPS)}")
