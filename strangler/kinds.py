"""A static table of backend kinds (routers, metric sources): what a spec's ``kind`` names.

Written out in code by each family (:mod:`strangler.traffic.kinds`,
:mod:`strangler.metrics.kinds`), not filled at import time; this module only says what an
entry is and how an unknown kind is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from strangler.errors import BadInput

__all__ = ["Kind", "build", "lookup"]

T = TypeVar("T")
C = TypeVar("C")


@dataclass(frozen=True)
class Kind(Generic[C, T]):
    """One kind: the model its options are checked against, and how to build one."""

    options: type[BaseModel]
    create: Callable[[Any, C], T]
    summary: str


def lookup(table: Mapping[str, Kind[C, T]], family: str, kind: str) -> Kind[C, T]:
    """The kind's entry; BadInput listing the valid kinds when there is none."""
    try:
        return table[kind]
    except KeyError:
        raise BadInput(
            f"unknown {family} kind {kind!r}; valid kinds: {', '.join(sorted(table))}"
        ) from None


def build(
    table: Mapping[str, Kind[C, T]], family: str, kind: str, options: Mapping[str, Any], ctx: C
) -> T:
    """A backend of ``kind`` built with its validated ``options``."""
    entry = lookup(table, family, kind)
    return entry.create(entry.options.model_validate(dict(options)), ctx)
