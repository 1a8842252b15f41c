"""The fold's rules: a round's changes to one table become one net change per key."""

from __future__ import annotations

import random

import pytest

from strangler.pg.sync.fold import CannotFold, fold
from strangler.pg.sync.pgoutput import UNCHANGED, Delete, Insert, Update

KEY = (0,)
U = UNCHANGED


def ins(*row):
    return Insert(1, tuple(row))


def upd(*row, old=None):
    return Update(1, tuple(row), None if old is None else tuple(old), old is not None)


def dele(*key_row):
    return Delete(1, tuple(key_row), True)


def test_a_key_inserted_updated_and_deleted_in_one_round_leaves_nothing():
    out = fold([ins("1", "a"), upd("1", "b"), dele("1", None)], KEY, 2)
    assert (out.inserts, out.updates, out.masked, out.deletes) == ([], [], [], [])
    assert out.changes == 3


def test_an_insert_followed_by_updates_is_one_insert_of_the_last_values():
    out = fold([ins("1", "a", "x"), upd("1", "b", U), upd("1", U, "y")], KEY, 3)
    assert out.inserts == [("1", "b", "y")]
    assert out.statements == 1


def test_updates_of_an_existing_row_keep_toasted_values_they_never_saw():
    out = fold([upd("7", "b", U), upd("7", U, U)], KEY, 3)
    assert out.masked == [("7", "b", U)]
    assert out.updates == []
    # Seen in full by a later change: a complete update.
    out = fold([upd("7", "b", U), upd("7", "c", "doc")], KEY, 3)
    assert out.updates == [("7", "c", "doc")]


def test_delete_then_insert_of_one_key_is_an_update_of_the_whole_row():
    out = fold([dele("5", None), ins("5", "again")], KEY, 2)
    assert out.updates == [("5", "again")]
    assert out.deletes == []


def test_a_deleted_existing_row_is_a_delete_by_key():
    out = fold([upd("5", "x"), dele("5", None)], KEY, 2)
    assert out.deletes == [("5", None)]


def test_a_moving_key_deletes_the_old_key_and_places_the_row_at_the_new_one():
    out = fold([upd("9", "moved", old=("1", None))], KEY, 2)
    assert out.deletes == [("1", None)]
    assert out.inserts == [("9", "moved")]
    # Moved onto a key the round deleted before: that key is updated in place.
    out = fold([dele("9", None), upd("9", "moved", old=("1", None))], KEY, 2)
    assert out.deletes == [("1", None)]
    assert out.updates == [("9", "moved")]
    # Inserted and moved within the round: only the final key is written.
    out = fold([ins("-1", "n"), upd("100", "n", old=("-1", None))], KEY, 2)
    assert out.inserts == [("100", "n")]
    assert out.deletes == []


def test_composite_keys():
    key = (0, 1)
    out = fold([ins("1", "1", "q"), upd("1", "2", "q", old=("1", "1", None))], key, 3)
    assert out.inserts == [("1", "2", "q")]


@pytest.mark.parametrize(
    "changes, key, why",
    [
        ([ins("1", "a")], (), "no replica-identity key"),
        ([upd(U, "a")], KEY, "key value is absent"),
        ([ins(None, "a")], KEY, "key value is absent"),
        ([dele("1", None), upd("1", "a")], KEY, "already deleted"),
        ([dele("1", None), dele("1", None)], KEY, "already deleted"),
        ([ins("1", "a"), ins("1", "b")], KEY, "already holds"),
        ([upd("2", U, old=("1", None))], KEY, "absent"),
        ([ins("2", "b"), upd("2", "a", old=("1", None))], KEY, "already holds"),
        ([Update(1, ("1", "a"), ("1", "z"), False)], KEY, "whole row"),
        ([Delete(1, ("1", "z"), False)], KEY, "whole row"),
    ],
)
def test_what_cannot_be_folded_is_refused_with_a_reason(changes, key, why):
    with pytest.raises(CannotFold, match=why):
        fold(changes, key, 2)


def test_folding_equals_replaying_on_random_histories():
    """Replaying changes one by one on a dict and applying the folded result must agree."""
    rnd = random.Random(3)
    for _ in range(300):
        table = {str(k): f"v{k}" for k in range(5)}
        start = dict(table)
        changes = []
        for _ in range(rnd.randint(1, 12)):
            op = rnd.choice("iudm")
            k = str(rnd.randint(0, 7))
            if op == "i" and k not in table:
                table[k] = f"i{len(changes)}"
                changes.append(ins(k, table[k]))
            elif op == "u" and k in table:
                table[k] = f"u{len(changes)}"
                changes.append(upd(k, table[k]))
            elif op == "d" and k in table:
                del table[k]
                changes.append(dele(k, None))
            elif op == "m" and k in table:
                new = str(rnd.randint(0, 7))
                if new not in table:
                    table[new] = table.pop(k)
                    changes.append(upd(new, table[new], old=(k, None)))
        out = fold(changes, KEY, 2)
        result = dict(start)
        for k, _ in out.deletes:
            assert k in result
            del result[k]
        for k, v in out.updates:
            assert k in result
            result[k] = v
        for k, v in out.inserts:
            assert k not in result
            result[k] = v
        assert result == table, changes
