"""Matching rows by key: pure functions over ``key -> [row hash, …]`` maps from each side.

A key maps to a list because a target without the primary-key constraint may hold the same key
twice; the surplus copies are reported as extra rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from strangler.verify.report import RowDiff

__all__ = ["Hashes", "KeyTuple", "classify", "group_hashes", "key_order"]

KeyTuple = tuple[str, ...]
Hashes = dict[KeyTuple, list[str]]


def group_hashes(rows: Iterable[tuple[Any, ...]]) -> Hashes:
    """``(key texts…, hash)`` rows into a map from key to the hashes of its rows."""
    out: Hashes = {}
    for r in rows:
        out.setdefault(tuple(str(v) for v in r[:-1]), []).append(str(r[-1]))
    return out


def key_order(key: KeyTuple) -> tuple[tuple[int, int | str], ...]:
    """Integers in numeric order, anything else by its text: stable, readable reports."""
    return tuple((0, int(k)) if k.lstrip("-").isdigit() else (1, k) for k in key)


def classify(names: tuple[str, ...], src: Hashes, tgt: Hashes) -> list[RowDiff]:
    """Missing, extra and changed rows between ``src`` and ``tgt``, keyed by ``names``.

    Per key, rows whose hashes match pair off; a leftover on both sides is a changed row,
    on the source only a missing one, on the target only an extra one.
    """
    differing = []
    for key in src.keys() | tgt.keys():
        a, b = src.get(key), tgt.get(key)
        if a is not None and b is not None and (a == b or sorted(a) == sorted(b)):
            continue  # the same row on both sides: the common case, kept cheap
        differing.append(key)
    out: list[RowDiff] = []
    # Only the few keys that differ are put in report order (sorting every key fetched
    # around them cost a third of a second at 100 differences).
    for key in sorted(differing, key=key_order):
        a, b = src.get(key), tgt.get(key)
        left = Counter(a or []) - Counter(b or [])
        right = Counter(b or []) - Counter(a or [])
        named = dict(zip(names, key, strict=True))
        pairs = min(left.total(), right.total())
        out += [RowDiff("changed", named)] * pairs
        out += [RowDiff("missing", named)] * (left.total() - pairs)
        out += [RowDiff("extra", named)] * (right.total() - pairs)
    return out
