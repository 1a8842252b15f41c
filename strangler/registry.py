"""Registries that map a spec's ``kind`` to a backend: routers, metric sources, checks.

A backend module registers itself at import time with the pydantic model of its options and a
factory. The spec validates ``{kind: …, …options}`` against that model at load time, so an
unknown kind or a wrong option fails before anything runs, and the error lists the valid
kinds. Adding a backend is one module and one test file; nothing else is edited.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

__all__ = ["Backend", "Registry"]

T = TypeVar("T")


@dataclass(frozen=True)
class Backend(Generic[T]):
    kind: str
    options: type[BaseModel]
    factory: Callable[..., T]
    summary: str


class Registry(Generic[T]):
    """Kinds of one family of backends (for example ``routers``)."""

    def __init__(self, family: str, package: str) -> None:
        self.family = family
        self._package = package
        self._backends: dict[str, Backend[T]] = {}
        self._loaded = False

    def register(
        self, kind: str, options: type[BaseModel], summary: str
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator for a backend factory: ``@routers.register("local", LocalOptions, "…")``."""

        def decorate(factory: Callable[..., T]) -> Callable[..., T]:
            self._backends[kind] = Backend(kind, options, factory, summary)
            return factory

        return decorate

    def _load(self) -> None:
        # Backends live in the family's package; importing it registers them all.
        if not self._loaded:
            self._loaded = True
            importlib.import_module(self._package)

    def kinds(self) -> list[str]:
        self._load()
        return sorted(self._backends)

    def get(self, kind: str) -> Backend[T]:
        self._load()
        try:
            return self._backends[kind]
        except KeyError:
            valid = ", ".join(self.kinds()) or "(none installed)"
            raise KeyError(f"unknown {self.family} kind {kind!r}; valid kinds: {valid}") from None

    def options(self, kind: str, values: dict[str, Any]) -> BaseModel:
        return self.get(kind).options.model_validate(values)
