"""What every traffic router is, and the registry that maps a spec's ``kind`` to one."""

from __future__ import annotations

from typing import Any

from strangler.registry import Registry

__all__ = ["routers"]

routers: Registry[Any] = Registry("router", "strangler.traffic")
