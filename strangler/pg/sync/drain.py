"""A drain made ready before a write switch's window (:mod:`strangler.pg.sync.cutover`).

Inside the window every millisecond is a write refused, and opening connections is what the
drain used to spend most of it on: a libpq connection with SCRAM authentication costs
several milliseconds of CPU on both ends, and a drain needs three (the source, the target,
the replication stream). :class:`Drain` opens them before the gate closes; in the window it
only waits for the mark to be applied: by its own stream when it holds the slot, else by
watching the position the running ``strangler sync`` stores. Whatever goes wrong on the fast
path, it falls back to :func:`strangler.pg.sync.cdc.run`, which reconnects as needed.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import psycopg

from strangler.errors import StranglerError
from strangler.pg.sync import cdc
from strangler.pg.sync.apply import Round
from strangler.pg.sync.slot import slot_status
from strangler.pg.sync.stream import SlotStream

__all__ = ["Drain"]


class Drain:
    """``with Drain(route) as drain: … drain.until(mark)``: connections (and the stream, when
    no other applier holds the slot) opened on entry, closed on exit."""

    def __init__(self, route: cdc.SyncRoute) -> None:
        self.route = route
        self.src: psycopg.Connection[Any] | None = None
        self.dst: psycopg.Connection[Any] | None = None
        self.stream: SlotStream | None = None
        self.worker: Any = None

    def __enter__(self) -> Drain:
        self.src = self.route.connect_source()
        self.dst = self.route.connect_target()
        self.worker = cdc.applier(self.route, self.src, self.dst)
        self._open_stream()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        for conn in (self.src, self.dst):
            if conn is not None:
                conn.close()

    def _open_stream(self) -> None:
        try:
            self.stream = SlotStream(
                self.route.source_dsn,
                role=self.route.source_role,
                slot=self.route.slot,
                publication=self.route.slot,
                start_lsn=self.worker.stored_position(),
            )
        except psycopg.errors.ObjectInUse:
            self.stream = None  # a running sync holds the slot: its position is ours to watch

    def until(self, lsn: int, *, timeout: float = 60.0, poll: float = 0.001) -> Round:
        """Return once everything up to ``lsn`` is applied (the stored position reached it)."""
        try:
            return self._until(lsn, timeout, poll)
        except (StranglerError, psycopg.Error):
            # The fast path met something unusual (a stream lost, the holder gone): the
            # general loop handles every case, at the price of its connections.
            self.close()
            return cdc.run(self.route, until_lsn=lsn, poll=poll, max_poll=0.01)

    def _until(self, lsn: int, timeout: float, poll: float) -> Round:
        assert self.src is not None and self.worker is not None
        deadline = time.monotonic() + timeout
        watched = time.monotonic()
        last = Round()
        while time.monotonic() < deadline:
            if self.stream is not None:
                last = self.worker.stream_round(self.stream, wait=0.01, linger=0.001)
            else:
                last = Round(position=self.worker.stored_position())
            if last.position >= lsn:
                return last
            if self.stream is None:
                if time.monotonic() - watched > 0.2:
                    # The holder may have stopped: take the slot ourselves if it is free.
                    watched = time.monotonic()
                    if slot_status(self.src, self.route.slot).active_pid is None:
                        with contextlib.suppress(psycopg.errors.ObjectInUse):
                            self._open_stream()
                time.sleep(poll)
        raise StranglerError(
            f"sync of {self.route.service} did not apply up to the switch's mark within "
            f"{timeout:g}s",
            hint=f"'strangler sync {self.route.service} --status' shows where it stands",
        )
