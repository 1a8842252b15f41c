"""The demo's application: clients placing and advancing orders while strangler works.

Each client places orders (an order, one to three items, a status row) and moves the orders
it placed along their statuses, now and then cancelling one by deleting it. It touches only
orders it placed itself, so the verify act's hand edits of older rows stay the only real
differences. A write refused by strangler's gate (SQLSTATE 25006, during and after a write
cutover) is counted, not fatal: that is the window the cutover measures from the outside.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["DemoLoad"]

_NEXT = {"pending": "paid", "paid": "shipped", "shipped": "delivered"}


@dataclass
class _Counts:
    committed: int = 0
    refused: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class DemoLoad:
    """``clients`` threads writing to ``schema``'s order tables until :meth:`stop`."""

    def __init__(
        self, dsn: str, schema: str, *, clients: int = 2, pause: float = 0.01, seed: int = 1
    ) -> None:
        self.dsn, self.schema, self.pause = dsn, schema, pause
        self.counts = _Counts()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(seed + i,), daemon=True, name="demo-load")
            for i in range(clients)
        ]

    def start(self) -> DemoLoad:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> _Counts:
        self._stop.set()
        for t in self._threads:
            t.join()
        return self.counts

    def _count(self, what: str, error: str | None = None) -> None:
        with self._lock:
            setattr(self.counts, what, getattr(self.counts, what) + 1)
            if error and len(self.counts.errors) < 5:
                self.counts.errors.append(error)

    def _client(self, seed: int) -> None:
        rnd = random.Random(seed)
        t = {n: sql.Identifier(self.schema, n) for n in ("orders", "order_items")}
        history = sql.Identifier(self.schema, "order_status_history")
        mine: dict[int, str] = {}
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            customers, products = conn.execute(
                sql.SQL("SELECT max(customer_id), (SELECT max(product_id) FROM {}) FROM {}").format(
                    t["order_items"], t["orders"]
                )
            ).fetchone() or (1, 1)
            while not self._stop.is_set():
                try:
                    with conn.transaction():
                        self._one(conn, rnd, t, history, mine, int(customers), int(products))
                    self._count("committed")
                except psycopg.errors.ReadOnlySqlTransaction:
                    self._count("refused")
                except psycopg.Error as exc:  # a lost race between two clients: counted
                    self._count("failed", f"{type(exc).__name__}: {exc}".splitlines()[0])
                self._stop.wait(self.pause)

    def _one(
        self,
        conn: psycopg.Connection[Any],
        rnd: random.Random,
        t: dict[str, sql.Identifier],
        history: sql.Identifier,
        mine: dict[int, str],
        customers: int,
        products: int,
    ) -> None:
        op = rnd.random()
        if op < 0.5 or not mine:
            row = conn.execute(
                sql.SQL(
                    "INSERT INTO {} (customer_id, total, notes) VALUES (%s, %s, 'demo load') "
                    "RETURNING id"
                ).format(t["orders"]),
                (rnd.randint(1, customers), rnd.randint(5, 500)),
            ).fetchone()
            order = int(row[0]) if row else 0
            for product in rnd.sample(range(1, products + 1), rnd.randint(1, 3)):
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (order_id, product_id, quantity, unit_price) "
                        "VALUES (%s, %s, %s, %s)"
                    ).format(t["order_items"]),
                    (order, product, rnd.randint(1, 4), rnd.randint(1, 90)),
                )
            status = "pending"
        elif op < 0.95:
            order = rnd.choice(list(mine))
            status = _NEXT.get(mine[order], "cancelled")
            conn.execute(
                sql.SQL("UPDATE {} SET status = %s, updated_at = now() WHERE id = %s").format(
                    t["orders"]
                ),
                (status, order),
            )
        else:
            order = rnd.choice(list(mine))
            conn.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(t["orders"]), (order,))
            del mine[order]
            return
        conn.execute(
            sql.SQL("INSERT INTO {} (order_id, status, changed_at) VALUES (%s, %s, now())").format(
                history
            ),
            (order, status),
        )
        mine[order] = status
