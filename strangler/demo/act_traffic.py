"""Demo act: shift the orders route from the monolith to order_service, gated, 5→20→50→100.

The monolith's and the order service's sample HTTP apps run behind strangler's own proxy (the
``local`` router) with a load generator in front; the walk bakes each step for a few seconds
under the spec's gates. With ``--faulty`` the order service starts failing a quarter of its
requests once it carries 20 % of the route, and the gates roll the traffic back by
themselves.
"""

from __future__ import annotations

from strangler.demo.apps import LoadGenerator, SampleApp
from strangler.demo.world import World
from strangler.errors import PhaseRefused
from strangler.phases import Action
from strangler.runbook import Runbook
from strangler.traffic.base import context_for, make_router
from strangler.traffic.proxy import LocalProxy
from strangler.traffic.shift import GateFailed, Shifter, traffic_spec

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
FORCE_REASON = "demo: database phases not built on this branch"


def _add_traffic(world: World, admin: str) -> None:
    text = world.spec_path.read_text()
    if "\n    traffic:" not in text:
        world.spec_path.write_text(
            text.rstrip("\n") + "\n" + TRAFFIC.format(route=ROUTE, admin=admin)
        )


def act_traffic(world: World) -> None:
    console = world.console
    monolith = SampleApp("monolith").start()
    service = SampleApp("order_service").start()
    proxy = LocalProxy(monolith.url, service.url, ROUTE).start()
    if world.options.faulty:
        service.failure_rate = 0.25
        service.fail_when = lambda: proxy.service_percent() >= 20
    load = LoadGenerator(proxy.url, rate=400, workers=8).start()
    try:
        _add_traffic(world, proxy.url)
        spec = world.spec
        console.print(
            f"monolith {monolith.url} · order_service {service.url} · proxy {proxy.url} "
            f"(route {ROUTE}) · load generator running"
        )
        with world.journal("strangler shift order_service --auto") as journal:
            rb = Runbook(spec, journal, "order_service")
            traffic = traffic_spec(rb)
            router = make_router(traffic, context_for(spec, "order_service"))
            shifter = Shifter(rb, router, say=console.print)
            force = False
            try:
                rb.check(Action.SHIFT_TRAFFIC, weight=traffic.steps[0])
            except PhaseRefused as refused:
                console.print(f"[yellow]{refused.message}; forcing: {FORCE_REASON}[/]")
                force = True
            try:
                result = shifter.auto(force=force, reason=FORCE_REASON if force else None)
                colour = "green" if result.status == "complete" else "yellow"
                console.print(f"[{colour}]{result.status}: {result.message}[/]")
                world.facts["traffic"] = result.status
            except GateFailed as failed:
                console.print(f"[bold red]automatic rollback:[/] {failed.message}")
                world.facts["traffic"] = "rolled_back"
            state = journal.state("order_service")
            world.facts["traffic_weight"] = state.weight
        stats = proxy.stats()["targets"]
        route_counts = {t: stats[t].get("route", {}).get("requests", 0) for t in stats}
        console.print(
            f"proxy now sends {proxy.service_percent():g} % of {ROUTE} to order_service; "
            f"route requests served: {route_counts}; client saw {dict(load.statuses)}"
        )
    finally:
        load.stop()
        proxy.stop()
        monolith.stop()
        service.stop()
