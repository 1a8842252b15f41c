"""Prove the copy: chunked server-side checksums, bisection to the rows that differ.

Modules, each with one job: :mod:`.canonical` (the row text both servers agree on),
:mod:`.chunks` (key ranges), :mod:`.table` (one table: hashes, bisection, row diffs),
:mod:`.report` (results as data, JSON and Markdown), :mod:`.watermark` (the online-sync hook)
and :mod:`.service` (pairs of tables, both servers at once). The journaled step and the
evidence it gives cutover live in :mod:`strangler.steps.verify`.
"""

from strangler.verify.report import ChunkDiff, RowDiff, TableReport, VerifyReport
from strangler.verify.service import MODES, verify_tables
from strangler.verify.watermark import SyncWatermark

__all__ = [
    "MODES",
    "ChunkDiff",
    "RowDiff",
    "SyncWatermark",
    "TableReport",
    "VerifyReport",
    "verify_tables",
]
