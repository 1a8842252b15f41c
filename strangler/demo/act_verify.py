"""Demo act: prove the copy, break it on purpose, watch verify name exactly the broken rows,
repair them, and prove it again.

It needs the copy made by the copy act. Without one (the act that makes it is not in this
build yet), it says so and skips rather than faking a copy.
"""

from __future__ import annotations

from psycopg import sql

from strangler.demo.world import SERVICE, World
from strangler.errors import CheckFailed
from strangler.phases import Action
from strangler.render.verify import render_report
from strangler.steps.runbook import Runbook
from strangler.steps.verify import sync_watermark, verify, verify_service
from strangler.verify.report import VerifyReport

__all__ = ["act_verify"]

# (what we do to the target, SQL on the service database; {s} is the service schema,
# filled in with sql.Identifier)
_DAMAGE = [
    (
        "edit the notes of one order",
        "CREATE TEMP TABLE demo_orders AS SELECT * FROM {s}.orders ORDER BY id LIMIT 1 OFFSET 7;"
        "UPDATE {s}.orders o SET notes = coalesce(o.notes, '') || ' (edited by hand)' "
        "FROM demo_orders d WHERE o.id = d.id",
    ),
    (
        "change the quantity of one order item",
        "CREATE TEMP TABLE demo_items AS "
        "SELECT * FROM {s}.order_items ORDER BY id LIMIT 1 OFFSET 42;"
        "UPDATE {s}.order_items i SET quantity = i.quantity + 1 "
        "FROM demo_items d WHERE i.id = d.id",
    ),
    (
        "delete one status-history row",
        "CREATE TEMP TABLE demo_gone AS "
        "SELECT * FROM {s}.order_status_history ORDER BY id LIMIT 1 OFFSET 99;"
        "DELETE FROM {s}.order_status_history h USING demo_gone d WHERE h.id = d.id",
    ),
    (
        "add a status-history row the monolith never had",
        "CREATE TEMP TABLE demo_extra AS "
        "SELECT * FROM {s}.order_status_history ORDER BY id LIMIT 1 OFFSET 5;"
        "UPDATE demo_extra SET id = (SELECT max(id) + 1000000 FROM {s}.order_status_history);"
        "INSERT INTO {s}.order_status_history OVERRIDING SYSTEM VALUE SELECT * FROM demo_extra",
    ),
]

_REPAIR = (
    "UPDATE {s}.orders o SET notes = d.notes FROM demo_orders d WHERE o.id = d.id;"
    "UPDATE {s}.order_items i SET quantity = d.quantity FROM demo_items d WHERE i.id = d.id;"
    "INSERT INTO {s}.order_status_history OVERRIDING SYSTEM VALUE SELECT * FROM demo_gone;"
    "DELETE FROM {s}.order_status_history h USING demo_extra d WHERE h.id = d.id"
)


def act_verify(world: World) -> None:
    spec = world.spec
    schema = spec.service(SERVICE).target.schema_
    with world.connect_service() as conn:
        present = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = ANY(%s)",
            (schema, list(spec.service(SERVICE).tables)),
        ).fetchone()
    if not present or present[0] < len(spec.service(SERVICE).tables):
        world.console.print(
            f"[yellow]skipped:[/] the service database has no copy in schema {schema} yet "
            "(the copy act is not part of this build); nothing to verify"
        )
        world.facts["verify"] = "skipped: no copy"
        return
    with world.journal("strangler verify order_service") as journal:
        runbook = Runbook(spec, journal, SERVICE)
        try:
            runbook.check(Action.VERIFY)
            journaled = True
        except CheckFailed as refused:
            world.console.print(f"[yellow]not journaled:[/] {refused.message}")
            journaled = False
        mark = sync_watermark(spec, SERVICE)

        def check() -> VerifyReport:
            if journaled:
                return verify(runbook, recheck=3, watermark=mark)
            return verify_service(spec, SERVICE, recheck=3, watermark=mark)

        first = check()
        render_report(first, 10, world.console)
        with world.connect_service() as conn:
            # Online sync gates the service schema against the application's writes until
            # cutover; a hand edit by a superuser goes around the gate, as this one does.
            conn.execute("SET session_replication_role = replica")
            for what, statement in _DAMAGE:
                world.console.print(f"damage: {what}")
                conn.execute(sql.SQL(statement).format(s=sql.Identifier(schema)))
            damaged = check()
            render_report(damaged, 10, world.console)
            world.console.print("repair: put the four rows back as the monolith has them")
            conn.execute(sql.SQL(_REPAIR).format(s=sql.Identifier(schema)))
        final = check()
        render_report(final, 10, world.console)
    found = sum(len(t.rows) for t in damaged.tables)
    world.facts["verify"] = (
        f"clean {first.passed}, damaged rows found {found} of 4, clean after repair {final.passed}"
    )
    if not (first.passed and found == 4 and final.passed):
        raise CheckFailed(
            f"the verify act did not go as rehearsed: {world.facts['verify']}",
            hint="strangler verify order_service -f " + str(world.spec_path),
        )
