"""A small monolith for sync tests: what real monoliths do, on real PostgreSQL.

``shop`` lives in ``public`` on the source; the same tables are created in ``svc`` on the
target (the extraction's job, done here with plain SQL so sync is tested on its own).
"""

from __future__ import annotations

import random
import threading
from typing import Any

import psycopg

from strangler.pg.copy.rows import Endpoints, copy_tables
from strangler.pg.sync.cdc import SyncRoute

TABLES = ("orders", "items")

SHOP = """
CREATE TABLE {s}.orders (
    id        bigserial PRIMARY KEY,
    customer  text NOT NULL,
    total     numeric(12, 2),
    note      text,
    doc       text,
    total_x2  numeric GENERATED ALWAYS AS (total * 2) STORED
);
CREATE TABLE {s}.items (
    order_id  bigint NOT NULL REFERENCES {s}.orders (id) ON DELETE CASCADE,
    line      int NOT NULL,
    qty       int NOT NULL,
    PRIMARY KEY (order_id, line)
);
"""

_FK = "REFERENCES {s}.orders (id) ON DELETE CASCADE"


def make_shop(source: Any, target: Any | None, *, rows: int = 200) -> None:
    """The shop on the source; its empty twin in ``svc`` on ``target`` (None: leave that to
    ``strangler copy``)."""
    source.execute(SHOP.format(s="public"))
    source.execute(
        "INSERT INTO public.orders (customer, total, note) "
        "SELECT 'c' || g, g, 'n' || g FROM generate_series(1, %s) g",
        (rows,),
    )
    source.execute(
        "INSERT INTO public.items SELECT o.id, l, l FROM public.orders o, generate_series(1, 2) l"
    )
    if target is not None:
        target.execute("CREATE SCHEMA svc")
        # Foreign keys come after the rows, as the extraction does it.
        target.execute(SHOP.format(s="svc").replace(_FK.format(s="svc"), ""))


def route(source: Any, target: Any, direction: str = "forward") -> SyncRoute:
    forward = direction == "forward"
    return SyncRoute(
        service="shop",
        direction="forward" if forward else "reverse",
        source_dsn=source.dsn if forward else target.dsn,
        source_schema="public" if forward else "svc",
        target_dsn=target.dsn if forward else source.dsn,
        target_schema="svc" if forward else "public",
        tables=TABLES,
        source_role="monolith",
        target_role="service",
    )


def copier(r: SyncRoute) -> Any:
    same = r.target_dsn == r.source_dsn
    ends = Endpoints(r.source_dsn, r.source_schema, None if same else r.target_dsn, r.target_schema)

    def copy(snapshot: str | None) -> None:
        assert snapshot is not None
        copy_tables(ends, r.tables, snapshot=snapshot)
        with psycopg.connect(r.target_dsn, autocommit=True) as conn:
            conn.execute(
                f"ALTER TABLE {r.target_schema}.items ADD FOREIGN KEY (order_id) "
                + _FK.format(s=r.target_schema)
            )

    return copy


_COLS = {
    "orders": "id, customer, total, note, md5(doc), total_x2",
    "items": "order_id, line, qty",
}
_ORDER = {"orders": "id", "items": "order_id, line"}


def rows_of(db: Any, schema: str, table: str) -> list[tuple[Any, ...]]:
    return db.execute(f"SELECT {_COLS[table]} FROM {schema}.{table} ORDER BY {_ORDER[table]}")


def differences(
    source: Any, target: Any, src_schema: str = "public", dst_schema: str = "svc"
) -> dict[str, int]:
    """Rows that differ per table (ordered comparison of every column, both ways)."""
    out = {}
    for table in TABLES:
        a = set(rows_of(source, src_schema, table))
        b = set(rows_of(target, dst_schema, table))
        out[table] = len(a ^ b)
    return out


class WriteLoad:
    """Concurrent writers: inserts, updates (some change the key), deletes, rollbacks."""

    def __init__(
        self,
        dsn: str,
        schema: str = "public",
        clients: int = 2,
        seed: int = 7,
        pause: float = 0.0,  # seconds between one client's transactions (0: flat out)
    ) -> None:
        self.dsn, self.schema, self.clients, self.pause = dsn, schema, clients, pause
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._work, args=(seed + i,), daemon=True)
            for i in range(clients)
        ]
        self.committed = 0
        self.refused = 0
        self.errors: list[str] = []

    def __enter__(self) -> WriteLoad:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

    def _work(self, seed: int) -> None:
        rnd = random.Random(seed)
        s = self.schema
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                try:
                    with conn.transaction():
                        op = rnd.random()
                        if op < 0.5:
                            oid = conn.execute(
                                f"INSERT INTO {s}.orders (customer, total) VALUES (%s, %s) "
                                "RETURNING id",
                                (f"w{seed}", rnd.randint(1, 999)),
                            ).fetchone()[0]
                            conn.execute(
                                f"INSERT INTO {s}.items VALUES (%s, 1, %s), (%s, 2, 1)",
                                (oid, rnd.randint(1, 9), oid),
                            )
                        elif op < 0.8:
                            conn.execute(
                                f"UPDATE {s}.orders SET total = total + 1, note = %s "
                                f"WHERE id = (SELECT max(id) - %s FROM {s}.orders)",
                                (f"u{rnd.random()}", rnd.randint(0, 50)),
                            )
                        elif op < 0.9:
                            conn.execute(
                                f"DELETE FROM {s}.orders "
                                f"WHERE id = (SELECT max(id) - %s FROM {s}.orders)",
                                (rnd.randint(0, 50),),
                            )
                        else:
                            conn.execute(
                                f"UPDATE {s}.items SET line = line + 100 "
                                f"WHERE order_id = (SELECT max(order_id) - %s FROM {s}.items) "
                                "AND line < 100",
                                (rnd.randint(0, 50),),
                            )
                    self.committed += 1
                    if self.pause:
                        self.stop.wait(self.pause)
                except psycopg.errors.ReadOnlySqlTransaction:
                    self.refused += 1
                except psycopg.Error as exc:  # deadlocks between writers are fine; count them
                    self.errors.append(type(exc).__name__)
