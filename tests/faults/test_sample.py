"""The fault campaign's CI sample (issue 15): a few trials of every fault kind.

The whole campaign (every step × every fault, ten trials each) is ``bench/faults.py``; here
each fault kind strikes the cheapest step it applies to, at a random moment (the seed is
printed; ``STRANGLER_FAULT_SEED`` repeats a run), and the trial must end as an uninterrupted
run does: recovered by the documented command, rows equal on both sides by our own digest,
nothing left behind that the journal does not know, the router agreeing with the journal, no
traceback and no password printed.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.backends import available
from tests.faults.faults import fault_named
from tests.faults.steps import step_named
from tests.faults.trial import Campaign

SEED = int(os.environ.get("STRANGLER_FAULT_SEED", str(random.SystemRandom().randrange(10**6))))

# (step, fault, trials): each fault kind on a step it applies to, cheapest first.
SAMPLE = [
    ("copy", "kill-9", 2),
    ("sync-forward", "kill-9", 1),
    ("copy", "restart", 1),
    ("sync-forward", "restart", 1),
    ("copy", "network", 1),
    ("sync-forward", "network", 1),
    ("copy", "target-disk-full", 1),
    ("copy", "journal-disk", 2),
    ("sync-forward", "slot-invalidated", 1),
    ("copy", "timeouts", 2),
    ("copy", "second-operator", 2),
    ("shift", "router-backend", 1),
]


@pytest.fixture(scope="module")
def campaign() -> Iterator[Campaign]:
    if os.geteuid() != 0:
        pytest.skip("the fault campaign mounts small filesystems and restarts servers: root only")
    root = Path(tempfile.mkdtemp(prefix="strangler-faults-", dir="/tmp"))
    kinds = ("haproxy",) if available("haproxy") is None else ()
    c = Campaign(root, backends=kinds)
    try:
        yield c
    finally:
        c.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("step", "fault", "index"),
    [(s, f, i) for s, f, n in SAMPLE for i in range(n)],
    ids=lambda v: str(v),
)
def test_a_fault_is_survived_with_nothing_lost(
    campaign: Campaign, step: str, fault: str, index: int
) -> None:
    if fault in ("target-disk-full", "journal-disk") and campaign.no_disks:
        pytest.skip(campaign.no_disks)
    case = step_named(step)
    if case.configs[0].traffic and not campaign.backend_kinds:
        pytest.skip("no router to fault here (CI installs haproxy)")
    seed = random.Random(f"{SEED}/{step}/{fault}/{index}").randrange(10**9)
    result = campaign.trial(case, fault_named(fault), index, seed)
    context = (
        f"STRANGLER_FAULT_SEED={SEED} repeats this run; "
        f"{json.dumps(result.to_dict(), default=str, indent=1)}"
    )
    assert result.ok, context
