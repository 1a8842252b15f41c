"""Bulk work spread over many processes (issue 17): a queue of chunks in the target database.

:mod:`.queue` is the table and its four verbs (enqueue, claim, finish, fail); :mod:`.worker`
is the loop ``strangler worker SERVICE`` runs (claim → copy or hash the chunk → mark it done,
in one target transaction); :mod:`.loader` is the copy's side of it (enqueue the planned
chunks, work beside the workers, wait for the queue to empty); :mod:`.verify` verifies by
chunks the same way. Mechanism: plain values in, dataclasses out, nothing journaled.
"""
