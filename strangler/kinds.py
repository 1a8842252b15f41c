"""A static table of backend kinds (routers, metric sources): what a spec's ``kind`` names.

Written out in code by each family (:mod:`strangler.traffic.kinds`,
:mod:`strangler.metrics.kinds`), not filled at import time; this module only says what an
entry is and how an unknown kind is refused.

An entry names its module rather than holding its classes: loading a spec that uses the
local router imports the local router, not boto3's ALB client, Terraform and CloudWatch too
(issue 16, start-up: a quarter of ``strangler status``'s imports were kinds it never used).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from strangler.errors import BadInput

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["Kind", "build", "lookup"]

T = TypeVar("T")
C = TypeVar("C")


@dataclass(frozen=True)
class Kind(Generic[C, T]):
    """One kind: the module that implements it, the name of the model its options are
    checked against there, and a line for people. The module's ``create(options, ctx)``
    builds one."""

    module: str
    options_model: str
    summary: str

    @property
    def options(self) -> type[BaseModel]:
        return cast(
            "type[BaseModel]", getattr(importlib.import_module(self.module), self.options_model)
        )

    @property
    def create(self) -> Callable[[Any, C], T]:
        return cast("Callable[[Any, C], T]", importlib.import_module(self.module).create)


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
