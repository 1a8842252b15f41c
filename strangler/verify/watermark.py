"""The hook online sync provides so verification can tell lag from real differences.

While online sync (issue 5) feeds the target, a row read on the source may not have reached
the target yet. Verification therefore records the source's WAL position right after it reads
a chunk; a chunk that differs is read again only once the sync has applied past that position,
with backoff, up to ``--recheck N`` times, and only a difference that survives is reported.

The sync side (:class:`strangler.pg.sync.cdc.Watermark`) meets this Protocol; the verify step
(:func:`strangler.steps.verify.watermark`) decides when there is one to pass.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["SyncWatermark"]


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
