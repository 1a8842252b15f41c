"""The hook online sync provides so verification can tell lag from real differences.

While online sync (issue 5) feeds the target, a row read on the source may not have reached
the target yet. Verification therefore records the source's WAL position right after it reads
a chunk; a chunk that differs is read again only once the sync has applied past that position,
with backoff, up to ``--recheck N`` times, and only a difference that survives is reported.

The sync side implements :class:`SyncWatermark`; verification only calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from strangler.spec import Spec

__all__ = ["SyncWatermark", "register_watermark", "watermark_for"]


@runtime_checkable
class SyncWatermark(Protocol):
    def source_position(self) -> str:
        """The source's current WAL position (``pg_current_wal_lsn()::text``), read now."""
        ...

    def wait_applied(self, lsn: str, timeout: float) -> bool:
        """Block until the target has applied every source change up to ``lsn``.

        True once it has; False when ``timeout`` seconds pass first (verification then keeps
        the difference and says the sync had not caught up).
        """
        ...


WatermarkFactory = Callable[["Spec", str], "SyncWatermark | None"]
_FACTORIES: list[WatermarkFactory] = []


def register_watermark(factory: WatermarkFactory) -> WatermarkFactory:
    """Let online sync offer a watermark for a service (``None``: no sync running for it).

    The sync module registers its factory on import; ``strangler verify`` asks each one.
    """
    if factory not in _FACTORIES:
        _FACTORIES.append(factory)
    return factory


def watermark_for(spec: Spec, service: str) -> SyncWatermark | None:
    """The first watermark a registered factory offers for ``service``, or None."""
    for factory in _FACTORIES:
        found = factory(spec, service)
        if found is not None:
            return found
    return None
