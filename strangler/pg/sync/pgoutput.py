"""A decoder of pgoutput's binary messages (protocol version 1): bytes in, dataclasses out.

No I/O here: :mod:`strangler.pg.sync.apply` feeds it the ``data`` column of
``pg_logical_slot_peek_binary_changes`` and acts on what comes out. The layout follows the
PostgreSQL documentation, "Logical Replication Message Formats". Values arrive in text form
(we never ask for ``binary``), so a column is ``str`` (a value), ``None`` (SQL NULL) or
:data:`UNCHANGED` (a TOASTed value an UPDATE left alone: it is absent from the stream and must
not be written, or the target would lose it).

Usage::

    msg = decode(data)
    if isinstance(msg, Insert): ...
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from strangler.errors import DecodeError

__all__ = [
    "UNCHANGED",
    "Begin",
    "Column",
    "Commit",
    "DecodeError",
    "Delete",
    "Insert",
    "Message",
    "Origin",
    "Relation",
    "Truncate",
    "Type",
    "Unchanged",
    "Update",
    "Value",
    "decode",
    "format_lsn",
    "parse_lsn",
]

_PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_INT16: Final = struct.Struct("!h")
_INT32: Final = struct.Struct("!i")


class Unchanged:
    """The marker for a TOASTed column an UPDATE did not touch (pgoutput's ``'u'``)."""

    _instance: Unchanged | None = None

    def __new__(cls) -> Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = Unchanged()
Value = str | None | Unchanged


def format_lsn(lsn: int) -> str:
    """``0x16B3748`` → ``'0/16B3748'``, PostgreSQL's spelling."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    flags: int
    commit_lsn: int
    # Where the transaction's commit record ends: the position to store and advance to, since
    # decoding skips transactions whose commit starts before the slot's confirmed position.
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True)
class Origin:
    commit_lsn: int
    name: str


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    type_modifier: int
    key: bool  # part of the replica identity


@dataclass(frozen=True)
class Relation:
    relid: int
    namespace: str
    name: str
    replica_identity: str  # d (default), n (nothing), f (full), i (index)
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.key)


@dataclass(frozen=True)
class Type:
    oid: int
    namespace: str
    name: str


@dataclass(frozen=True)
class Insert:
    relid: int
    new: tuple[Value, ...]


@dataclass(frozen=True)
class Update:
    relid: int
    new: tuple[Value, ...]
    # The old key ('K', the key changed) or the whole old row ('O', replica identity full);
    # None when the key did not change, so the new tuple's key columns locate the row.
    old: tuple[Value, ...] | None = None
    old_is_key: bool = False


@dataclass(frozen=True)
class Delete:
    relid: int
    old: tuple[Value, ...]
    old_is_key: bool


@dataclass(frozen=True)
class Truncate:
    relids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True)
class LogicalMessage:
    """``pg_logical_emit_message`` output; only sent when asked for, ignored by the applier."""

    transactional: bool
    prefix: str
    content: bytes


Message = (
    Begin | Commit | Origin | Relation | Type | Insert | Update | Delete | Truncate | LogicalMessage
)


class _Reader:
    """A cursor over one message's bytes; every read checks the bounds."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DecodeError(
                f"pgoutput message truncated: wanted {n} bytes at offset {self.pos}, "
                f"message has {len(self.data)}"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self._take(1)[0]

    def char(self) -> str:
        return chr(self.byte())

    def int16(self) -> int:
        return int(struct.unpack("!h", self._take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack("!i", self._take(4))[0])

    def uint32(self) -> int:
        return int(struct.unpack("!I", self._take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack("!q", self._take(8))[0])

    def uint64(self) -> int:
        return int(struct.unpack("!Q", self._take(8))[0])

    def timestamp(self) -> datetime:
        return _PG_EPOCH + timedelta(microseconds=self.int64())

    def string(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise DecodeError(f"pgoutput string at offset {self.pos} has no terminator")
        text = self.data[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return text

    def tuple_data(self) -> tuple[Value, ...]:
        # The hot path of sync (every changed row passes here): indexes and unpack_from on the
        # message's bytes instead of a slice per field.
        data, pos, size = self.data, self.pos, len(self.data)
        if pos + 2 > size:
            self._take(2)  # raises the truncation error
        count = _INT16.unpack_from(data, pos)[0]
        pos += 2
        values: list[Value] = []
        append = values.append
        for _ in range(count):
            if pos >= size:
                self.pos = pos
                self._take(1)
            kind = data[pos]
            pos += 1
            if kind == 0x74:  # 't': text
                if pos + 4 > size:
                    self.pos = pos
                    self._take(4)
                end = pos + 4 + _INT32.unpack_from(data, pos)[0]
                if end > size:
                    self.pos = pos + 4
                    self._take(end - pos - 4)
                append(data[pos + 4 : end].decode("utf-8"))
                pos = end
            elif kind == 0x6E:  # 'n'
                append(None)
            elif kind == 0x75:  # 'u'
                append(UNCHANGED)
            elif kind == 0x62:  # 'b'
                raise DecodeError("binary column values are not supported; do not ask for them")
            else:
                raise DecodeError(f"unknown column kind {chr(kind)!r} in pgoutput tuple data")
        self.pos = pos
        return tuple(values)

    def done(self, what: str) -> None:
        if self.pos != len(self.data):
            raise DecodeError(
                f"pgoutput {what} message has {len(self.data) - self.pos} unexpected trailing bytes"
            )


def _relation(r: _Reader) -> Relation:
    relid = r.uint32()
    namespace = r.string()
    name = r.string()
    identity = r.char()
    columns = []
    for _ in range(r.int16()):
        flags = r.byte()
        columns.append(Column(r.string(), r.uint32(), r.int32(), key=bool(flags & 1)))
    return Relation(relid, namespace, name, identity, tuple(columns))


def _update(r: _Reader) -> Update:
    relid = r.uint32()
    kind = r.char()
    old: tuple[Value, ...] | None = None
    old_is_key = False
    if kind in ("K", "O"):
        old, old_is_key = r.tuple_data(), kind == "K"
        kind = r.char()
    if kind != "N":
        raise DecodeError(f"pgoutput Update: expected a new tuple ('N'), found {kind!r}")
    return Update(relid, r.tuple_data(), old, old_is_key)


def _delete(r: _Reader) -> Delete:
    relid = r.uint32()
    kind = r.char()
    if kind not in ("K", "O"):
        raise DecodeError(f"pgoutput Delete: expected an old key or row, found {kind!r}")
    return Delete(relid, r.tuple_data(), kind == "K")


def _insert(r: _Reader) -> Insert:
    relid = r.uint32()
    kind = r.char()
    if kind != "N":
        raise DecodeError(f"pgoutput Insert: expected a new tuple ('N'), found {kind!r}")
    return Insert(relid, r.tuple_data())


def _truncate(r: _Reader) -> Truncate:
    count = r.int32()
    options = r.byte()
    relids = tuple(r.uint32() for _ in range(count))
    return Truncate(relids, cascade=bool(options & 1), restart_identity=bool(options & 2))


def decode(data: bytes) -> Message:
    """One pgoutput v1 message; :class:`DecodeError` for anything malformed or unknown."""
    if not data:
        raise DecodeError("empty pgoutput message")
    r = _Reader(bytes(data))
    tag = r.char()
    msg: Message
    if tag == "B":
        msg = Begin(r.uint64(), r.timestamp(), r.uint32())
    elif tag == "C":
        msg = Commit(r.byte(), r.uint64(), r.uint64(), r.timestamp())
    elif tag == "O":
        msg = Origin(r.uint64(), r.string())
    elif tag == "R":
        msg = _relation(r)
    elif tag == "Y":
        msg = Type(r.uint32(), r.string(), r.string())
    elif tag == "I":
        msg = _insert(r)
    elif tag == "U":
        msg = _update(r)
    elif tag == "D":
        msg = _delete(r)
    elif tag == "T":
        msg = _truncate(r)
    elif tag == "M":
        transactional = bool(r.byte())
        r.uint64()  # the message's LSN
        prefix = r.string()
        msg = LogicalMessage(transactional, prefix, r._take(r.int32()))
    else:
        raise DecodeError(f"unknown pgoutput message type {tag!r}")
    r.done(type(msg).__name__)
    return msg
