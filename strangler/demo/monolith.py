"""Build the sample monolith: schema from ``monolith.sql``, rows generated server-side.

Rows are made by ``generate_series`` inside PostgreSQL (Python never loops over rows), from a
fixed seed, so every demo and test run sees the same data for the same scale.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any

import psycopg

__all__ = ["build_monolith", "monolith_counts"]

_DATA = [
    (
        "customers",
        """INSERT INTO public.customers (email, full_name, created_at)
           SELECT 'customer' || g || '@example.com', 'Customer ' || g,
                  timestamptz '2023-01-01 00:00:00+00' + (g * interval '37 minutes')
           FROM generate_series(1, %(customers)s) AS g""",
    ),
    (
        "products",
        """INSERT INTO public.products (sku, name, price, attributes)
           SELECT 'SKU-' || lpad(g::text, 6, '0'), 'Product ' || g,
                  round((1 + random() * 499)::numeric, 2),
                  jsonb_build_object('color', (ARRAY['red','green','blue'])[1 + g %% 3],
                                     'weight_g', 100 + g %% 900)
           FROM generate_series(1, %(products)s) AS g""",
    ),
    (
        "orders",
        """INSERT INTO public.orders
               (customer_id, status, total, currency, shipping, notes, tags, placed_at, updated_at)
           SELECT 1 + (g * 7919) %% %(customers)s,
                  (ARRAY['pending','paid','shipped','delivered','cancelled']::public.order_status[])
                      [1 + g %% 5],
                  round((random() * 900 + 10)::numeric, 2),
                  CASE WHEN g %% 10 = 0 THEN 'USD' ELSE 'EUR' END,
                  CASE WHEN g %% 7 = 0 THEN NULL ELSE jsonb_build_object(
                      'city', 'City ' || (g %% 97), 'zip', lpad((g %% 99999)::text, 5, '0'),
                      'express', g %% 3 = 0) END,
                  CASE WHEN g %% 4 = 0 THEN 'Leave at the door #' || g ELSE NULL END,
                  CASE WHEN g %% 6 = 0 THEN ARRAY['gift'] ELSE '{}' END,
                  timestamptz '2024-01-01 00:00:00+00' + (g * interval '3 minutes 7 seconds'),
                  timestamptz '2024-01-01 00:00:00+00' + (g * interval '3 minutes 9 seconds')
           FROM generate_series(1, %(orders)s) AS g""",
    ),
    (
        "order_items",
        """INSERT INTO public.order_items (order_id, product_id, quantity, unit_price, discount)
           SELECT o, 1 + ((o * 31 + i * 17) %% %(products)s), 1 + (o + i) %% 4,
                  round((1 + random() * 199)::numeric, 2),
                  CASE WHEN i = 3 THEN 5.00 ELSE 0 END
           FROM generate_series(1, %(orders)s) AS o, generate_series(1, 3) AS i""",
    ),
    (
        "order_status_history",
        """INSERT INTO public.order_status_history (order_id, status, changed_at, changed_by)
           SELECT o, (ARRAY['pending','paid']::public.order_status[])[h],
                  timestamptz '2024-01-01 00:00:00+00' + (o * interval '3 minutes 7 seconds')
                      + (h * interval '1 hour'),
                  CASE WHEN h = 1 THEN 'checkout' ELSE 'payments' END
           FROM generate_series(1, %(orders)s) AS o, generate_series(1, 2) AS h""",
    ),
]


def build_monolith(
    conn: psycopg.Connection[Any],
    *,
    orders: int = 100_000,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, int]:
    """Create and fill the sample monolith in ``public``; returns rows per table.

    ``progress(table, i, n)`` is told before each of the ``n`` tables is filled, so the demo
    can say what it is doing while a big monolith builds (issue 14)."""
    sizes = {
        "orders": orders,
        "customers": max(10, orders // 10),
        "products": max(10, min(20_000, orders // 100)),
    }
    ddl = resources.files("strangler.demo").joinpath("monolith.sql").read_text()
    with conn.transaction():
        conn.execute("SELECT setseed(0.42)")
        conn.execute(ddl.encode())  # our own file, not input
        for i, (table, stmt) in enumerate(_DATA, 1):
            if progress:
                progress(table, i, len(_DATA))
            conn.execute(stmt.encode(), sizes)
    if progress:
        progress("statistics (ANALYZE)", len(_DATA), len(_DATA))
    conn.execute("ANALYZE")
    return monolith_counts(conn)


def monolith_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    out = {}
    for table, _ in _DATA:
        row = conn.execute(
            psycopg.sql.SQL("SELECT count(*) FROM public.{}").format(psycopg.sql.Identifier(table))
        ).fetchone()
        out[table] = int(row[0]) if row else 0
    return out
