"""Fault injection (issue 15): the machinery of the fault campaign and its CI sample.

``bench/faults.py`` runs the whole campaign on demand and writes ``docs/reliability.md``;
``tests/faults/test_sample.py`` runs a few trials of each fault kind in CI. Both use the same
pieces, one module per job:

- :mod:`.proxy`: a TCP proxy on loopback that can drop or stall every connection through it;
- :mod:`.mounts`: small tmpfs filesystems to fill up or turn read-only;
- :mod:`.servers`: the campaign's PostgreSQL servers (the target's data on a small tmpfs),
  reached through fault proxies, and the traffic backends (HAProxy, moto's ALB, Prometheus);
- :mod:`.world`: one trial's world: fresh databases, the demo monolith, a spec, pgbench load;
- :mod:`.checks`: what must hold after a trial (independent digest, nothing left behind,
  router weights equal to the journal's);
- :mod:`.faults`: the fault kinds; :mod:`.steps`: the steps under test; :mod:`.trial`:
  one trial (prepare, start the step, inject, recover, check) and its result.
"""
