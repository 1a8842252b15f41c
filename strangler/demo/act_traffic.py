"""Demo act: shift the orders route from the monolith to order_service, gated, 5→20→50→100,
by ``strangler run --wait`` (it sleeps through each bake interval).

The monolith's and the order service's sample HTTP apps run behind strangler's own proxy (the
``local`` router) with a load generator in front; the walk bakes each step for a few seconds
under the spec's gates. With ``--faulty`` the order service starts failing a quarter of its
requests once it carries 20 % of the route, and the gates roll the traffic back by
themselves.
"""

from __future__ import annotations

import re

from strangler.demo.apps import LoadGenerator, SampleApp
from strangler.demo.world import SERVICE, World
from strangler.errors import GateFailed
from strangler.phases import Phase
from strangler.render.run import render_run
from strangler.steps.run import run_until_done
from strangler.steps.runbook import Runbook
from strangler.steps.types import RunOptions
from strangler.traffic.proxy import LocalProxy

__all__ = ["act_traffic"]

ROUTE = "/api/v1/orders*"
# Short bakes so the demo takes seconds; the spec's defaults are the runbook's 24 h / 48 h.
TRAFFIC = """\
    traffic:
      route: "{route}"
      router: {{ kind: local, admin_url: "{admin}" }}
      steps: [5, 20, 50, 100]
      bake: 4s
      final_bake: 4s
      interval: 2s
      failed_intervals: 2
      gates:
        - {{ metric: request_count, min: 8 }}
        - {{ metric: error_rate, max: 0.05, max_increase_over_baseline: 0.02 }}
        - {{ metric: latency_p99, max_ratio_to_baseline: 10 }}
"""


def _add_traffic(world: World, admin: str) -> None:
    text = world.spec_path.read_text()
    if "\n    traffic:" not in text:
        world.spec_path.write_text(
            text.rstrip("\n") + "\n" + TRAFFIC.format(route=ROUTE, admin=admin)
        )


def _failed_weight(message: str) -> str:
    found = re.search(r"gates failed at ([\d.]+ %)", message)
    return found.group(1) if found else "a traffic step"


def act_traffic(world: World) -> None:
    console = world.console
    monolith = SampleApp("monolith").start()
    service = SampleApp("order_service").start()
    proxy = LocalProxy(monolith.url, service.url, ROUTE).start()
    if world.options.faulty:
        service.failure_rate = 0.25
        service.fail_when = lambda: proxy.service_percent() >= 20
    load = LoadGenerator(proxy.url, rate=400, workers=8).start()
    # The decommission act takes the monolith off this proxy's route: it lives until the end.
    world.cleanups += [service.stop, monolith.stop, proxy.stop, load.stop]
    _add_traffic(world, proxy.url)
    spec = world.spec
    console.print(
        f"monolith {monolith.url} · order_service {service.url} · proxy {proxy.url} "
        f"(route {ROUTE}) · load generator running"
    )
    with world.journal(f"strangler run {SERVICE} --wait") as journal:
        rb = Runbook(spec, journal, SERVICE)
        done = run_until_done(
            rb,
            until=Phase.TRAFFIC_COMPLETE,
            options=RunOptions(say=lambda text: console.print(text, markup=False)),
        )
        if done.status == "done":
            console.print(f"[green]complete: {done.phase}[/]")
            world.facts["traffic"] = "complete"
        elif isinstance(done.error, GateFailed):
            # The reason was said once, as the rollback happened (issue 14: not twice).
            console.print(
                f"[bold red]automatic rollback[/]: the gates failed at "
                f"{_failed_weight(done.error.message)}; all of {ROUTE} is back on the monolith "
                f"('strangler history {SERVICE}' has every evaluation)"
            )
            world.facts["traffic"] = "rolled_back"
        else:
            render_run(console, done)
            world.facts["traffic"] = done.status
        world.facts["traffic_weight"] = journal.state(SERVICE).weight
    stats = proxy.stats()["targets"]
    served = ", ".join(
        f"{t} {stats[t].get('route', {}).get('requests', 0):,}" for t in sorted(stats)
    )
    seen = ", ".join(f"{n:,} × {code}" for code, n in sorted(load.statuses.items()))
    console.print(
        f"proxy now sends {proxy.service_percent():g} % of {ROUTE} to order_service; "
        f"route requests served: {served}; the client saw {seen}"
    )
