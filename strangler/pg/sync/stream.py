"""Read a logical slot over a replication connection, so each change is decoded once.

Why not only the SQL slot functions: ``pg_logical_slot_peek_binary_changes`` decodes from the
slot's ``restart_lsn`` on every call, and ``restart_lsn`` moves only at a running-transactions
record (every 15 s at best). Under four writing clients each peek re-decoded up to 35 MB of
WAL and the monolith lost a third of its throughput to that. A walsender decodes each change
once and streams it as it commits.

psycopg 3 has no replication client, but libpq does the transport: a connection opened with
``replication=database`` accepts ``START_REPLICATION``, whose ``COPY BOTH`` stream we read
and answer at the protocol level (``XLogData`` in, standby status updates out). Only the
position the target has durably stored is ever confirmed, so a crash at any moment resumes
from it.
"""

from __future__ import annotations

import select
import struct
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import pq, sql

from strangler.errors import StreamLost
from strangler.pg.connect import connect
from strangler.pg.sync.pgoutput import format_lsn

__all__ = ["APPLICATION_NAME", "SlotStream", "StreamLost"]

APPLICATION_NAME = "strangler sync"  # how a slot's holder is recognised (pg_stat_activity)
_FEEDBACK_EVERY = 10.0  # seconds; far inside the server's wal_sender_timeout (60 s default)
_EPOCH_2000 = datetime(2000, 1, 1, tzinfo=UTC)
_XLOGDATA_HEADER = 1 + 8 + 8 + 8  # 'w', start, end, send time
_KEEPALIVE = struct.Struct("!QqB")
_STATUS = struct.Struct("!cQQQqB")


class SlotStream:
    """``START_REPLICATION`` of ``slot`` from ``start_lsn`` with pgoutput on ``publication``.

    Raises what PostgreSQL raises at the start: ``ObjectInUse`` when another process holds
    the slot, ``UndefinedObject`` when it does not exist.
    """

    def __init__(self, dsn: str, *, role: str, slot: str, publication: str, start_lsn: int) -> None:
        self.confirmed = start_lsn
        # The WAL position the walsender last said it had decoded (its keepalives): every
        # transaction that committed before it and touched a published table has been sent
        # before that keepalive, so once the messages read so far are applied the position
        # may move there, over WAL of tables the service does not move (issue 12: lag).
        self.server_lsn = start_lsn
        self._last_feedback = time.monotonic()
        self.conn: psycopg.Connection[Any] = connect(
            dsn,
            role=role,
            replication="database",
            application_name=f"{APPLICATION_NAME} {slot}"[:63],
        )
        try:
            query = sql.SQL(
                "START_REPLICATION SLOT {} LOGICAL {} (proto_version '1', "
                "publication_names {}, messages 'true')"
            ).format(
                sql.Identifier(slot),
                sql.SQL(format_lsn(start_lsn)),  # hex digits and a slash, formatted by us
                sql.Literal(sql.Identifier(publication).as_string(self.conn)),
            )
            pgconn = self.conn.pgconn
            pgconn.send_query(query.as_bytes(self.conn))
            res = pgconn.get_result()
            if res is None or res.status != pq.ExecStatus.COPY_BOTH:
                if res is not None and res.status == pq.ExecStatus.FATAL_ERROR:
                    raise psycopg.errors.error_from_result(res, encoding=self.conn.info.encoding)
                raise StreamLost(f"START_REPLICATION answered {res and res.status}")
        except BaseException:
            self.conn.close()
            raise

    def read(self, timeout: float) -> bytes | None:
        """The next pgoutput message, or None when none arrives within ``timeout`` seconds."""
        pgconn = self.conn.pgconn
        deadline = time.monotonic() + timeout
        while True:
            try:
                n, data = pgconn.get_copy_data(1)
            except psycopg.OperationalError as exc:
                raise StreamLost(f"replication stream lost: {exc}") from None
            if n > 0:
                kind = data[0]
                if kind == 0x77:  # 'w': XLogData, the plugin's message after the header
                    return bytes(data[_XLOGDATA_HEADER:])
                if kind == 0x6B:  # 'k': keepalive (the server's WAL end, reply-now flag)
                    wal_end, _, reply = _KEEPALIVE.unpack_from(data, 1)
                    self.server_lsn = max(self.server_lsn, wal_end)
                    if reply:
                        self._feedback()
                continue
            if n < 0:
                raise StreamLost(
                    f"replication stream ended: {pgconn.get_error_message() or 'by the server'}"
                )
            if time.monotonic() - self._last_feedback > _FEEDBACK_EVERY:
                self._feedback()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            select.select([pgconn.socket], [], [], min(left, _FEEDBACK_EVERY))
            try:
                pgconn.consume_input()
            except psycopg.OperationalError as exc:
                raise StreamLost(f"replication stream lost: {exc}") from None

    def confirm(self, lsn: int) -> None:
        """Tell the server everything before ``lsn`` is durably applied (it may recycle WAL)."""
        if lsn > self.confirmed:
            self.confirmed = lsn
            self._feedback()

    def _feedback(self) -> None:
        now = int((datetime.now(UTC) - _EPOCH_2000).total_seconds() * 1_000_000)
        lsn = self.confirmed
        pgconn = self.conn.pgconn
        try:
            pgconn.put_copy_data(_STATUS.pack(b"r", lsn, lsn, lsn, now, 0))
            pgconn.flush()
        except psycopg.OperationalError as exc:
            raise StreamLost(f"replication stream lost: {exc}") from None
        self._last_feedback = time.monotonic()

    def close(self) -> None:
        self.conn.close()
