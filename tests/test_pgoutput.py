"""The pgoutput decoder on hand-built messages: every kind, TOAST markers, malformed bytes."""

from __future__ import annotations

import struct

import pytest

from strangler.pg.sync.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    DecodeError,
    Delete,
    Relation,
    Truncate,
    Update,
    decode,
    format_lsn,
    parse_lsn,
)


def _tuple(*cols: bytes | str | None) -> bytes:
    out = struct.pack("!h", len(cols))
    for c in cols:
        if c is None:
            out += b"n"
        elif c == "u":
            out += b"u"
        else:
            assert isinstance(c, bytes)
            out += b"t" + struct.pack("!i", len(c)) + c
    return out


def test_begin_commit_and_lsn_spelling():
    begin = decode(b"B" + struct.pack("!Qqi", 0x1_0000_0010, 0, 42))
    assert begin == Begin(0x1_0000_0010, begin.commit_time, 42)
    assert begin.commit_time.year == 2000
    commit = decode(b"C" + struct.pack("!bQQq", 0, 5, 9, 1_000_000))
    assert isinstance(commit, Commit) and (commit.commit_lsn, commit.end_lsn) == (5, 9)
    assert format_lsn(0x1_0000_0010) == "1/10" and parse_lsn("1/10") == 0x1_0000_0010


def test_relation_marks_key_columns():
    body = struct.pack("!I", 7) + b"public\0orders\0d" + struct.pack("!h", 2)
    body += b"\x01id\0" + struct.pack("!Ii", 20, -1) + b"\x00note\0" + struct.pack("!Ii", 25, -1)
    rel = decode(b"R" + body)
    assert isinstance(rel, Relation)
    assert rel.key_names == ("id",) and rel.column_names == ("id", "note")


def test_update_with_old_key_and_unchanged_toast():
    msg = decode(b"U" + struct.pack("!I", 7) + b"K" + _tuple(b"1", None) + b"N" + _tuple(b"2", "u"))
    assert msg == Update(7, ("2", UNCHANGED), ("1", None), old_is_key=True)
    plain = decode(b"U" + struct.pack("!I", 7) + b"N" + _tuple(b"3", b"x"))
    assert plain == Update(7, ("3", "x"))


def test_delete_and_truncate():
    assert decode(b"D" + struct.pack("!I", 7) + b"O" + _tuple(b"1")) == Delete(7, ("1",), False)
    trunc = decode(b"T" + struct.pack("!ib", 2, 3) + struct.pack("!II", 7, 8))
    assert trunc == Truncate((7, 8), cascade=True, restart_identity=True)


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "empty"),
        (b"Z", "unknown pgoutput message type"),
        (b"B\x00\x01", "truncated"),
        (b"I" + struct.pack("!I", 7) + b"N" + struct.pack("!h", 1) + b"x", "unknown column kind"),
        (b"C" + struct.pack("!bQQq", 0, 5, 9, 1) + b"!", "trailing"),
    ],
)
def test_malformed_messages_are_refused(data, match):
    with pytest.raises(DecodeError, match=match):
        decode(data)
