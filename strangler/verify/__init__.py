"""Prove the copy: chunked server-side checksums, bisection to the rows, evidence for cutover.

Modules, each with one job: :mod:`.canonical` (the row text both servers agree on),
:mod:`.chunks` (key ranges), :mod:`.table` (one table: hashes, bisection, row diffs),
:mod:`.report` (results as data, JSON and Markdown), :mod:`.watermark` (the online-sync hook),
:mod:`.service` (a service's tables, the runbook step, the journal) and :mod:`.evidence` (the
requirement before write and traffic cutover, registered on import).
"""

from strangler.verify import evidence as _evidence  # noqa: F401  (registers the requirement)
from strangler.verify.report import ChunkDiff, RowDiff, TableReport, VerifyReport
from strangler.verify.service import MODES, run_verification, verify_service
from strangler.verify.watermark import SyncWatermark, register_watermark, watermark_for

__all__ = [
    "MODES",
    "ChunkDiff",
    "RowDiff",
    "SyncWatermark",
    "TableReport",
    "VerifyReport",
    "register_watermark",
    "run_verification",
    "verify_service",
    "watermark_for",
]
