"""Partitioned tables under online sync: one publication through the root, and a watch on
the partition tree.

How changes of a partitioned table travel (issue 12): the publication is created with
``publish_via_partition_root``, so pgoutput sends every change of every partition (and of
sub-partitions, and of the default partition) as a change of the moved table itself, under
the root's column order and replica identity. An UPDATE that moves a row to another partition
arrives as a DELETE and an INSERT of the root, which the applier folds like any other pair.
The service's own copy of the table is partitioned the same way, so the rows land in the
partition of the same name there.

What the stream cannot carry is the tree itself. A partition attached on the monolith brings
rows the stream never saw; one detached leaves rows in the service that the monolith no
longer has under that table; one created may receive rows the service has nowhere to put.
:func:`tree_differences` compares the two sides' trees (names, parents, bounds); the applier
checks it before each round and stops sync before applying anything once they differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

__all__ = ["Partition", "partition_tree", "partitioned_roots", "tree_differences"]

_TREE = """
SELECT r.relname AS root, c.relname, p.relname AS parent,
       pg_get_expr(c.relpartbound, c.oid) AS bound, c.relkind::text
FROM pg_class r
JOIN pg_namespace n ON n.oid = r.relnamespace
CROSS JOIN LATERAL pg_partition_tree(r.oid) t
JOIN pg_class c ON c.oid = t.relid
LEFT JOIN pg_class p ON p.oid = t.parentrelid
WHERE n.nspname = %s AND r.relname = ANY(%s) AND r.relkind = 'p' AND t.level > 0
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class Partition:
    root: str  # the moved table
    name: str
    parent: str
    bound: str  # FOR VALUES … or DEFAULT
    kind: str  # r (leaf) | p (sub-partitioned)


def partitioned_roots(
    conn: psycopg.Connection[Any], schema: str, tables: Sequence[str]
) -> list[str]:
    """The moved tables of ``schema`` that are partitioned."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = ANY(%s) AND c.relkind = 'p' ORDER BY 1",
        (schema, list(tables)),
    ).fetchall()
    return [r[0] for r in rows]


def partition_tree(
    conn: psycopg.Connection[Any], schema: str, tables: Sequence[str]
) -> dict[str, Partition]:
    """Every partition (at any depth) of the partitioned ``tables`` of ``schema``, by name."""
    return {
        r[1]: Partition(r[0], r[1], r[2], r[3], r[4])
        for r in conn.execute(_TREE, (schema, list(tables))).fetchall()
    }


def tree_differences(
    source: dict[str, Partition], target: dict[str, Partition], source_label: str, target_label: str
) -> list[str]:
    """What differs between two partition trees, one sentence each (empty: the same)."""
    out: list[str] = []
    for name in sorted(set(source) - set(target)):
        p = source[name]
        out.append(
            f"partition {name} of {p.parent} ({p.bound}) exists on {source_label} but not on "
            f"{target_label}: it was created or attached there during sync, and rows it held "
            "before are not in the change stream"
        )
    for name in sorted(set(target) - set(source)):
        p = target[name]
        out.append(
            f"partition {name} of {p.parent} ({p.bound}) exists on {target_label} but no "
            f"longer on {source_label}: it was detached or dropped there during sync, and "
            f"{target_label} still holds its rows"
        )
    for name in sorted(set(source) & set(target)):
        a, b = source[name], target[name]
        if (a.parent, a.bound) != (b.parent, b.bound):
            out.append(
                f"partition {name} is {a.bound} of {a.parent} on {source_label} but "
                f"{b.bound} of {b.parent} on {target_label}"
            )
    return out
