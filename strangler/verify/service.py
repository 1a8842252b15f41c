"""Verify a service's copy: map its tables from the spec, run them, record the result.

:func:`verify_service` only reads; :func:`run_verification` wraps it in the runbook step
(``Action.VERIFY``: the phase moves to ``verified`` only on a pass) and records every result
as a ``verify`` event in the journal, which :mod:`strangler.verify.evidence` reads before
writes or traffic may move.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from strangler.errors import BadInput, CheckFailed, DatabaseUnreachable
from strangler.journal import Journal
from strangler.pg.connect import connect, describe_dsn
from strangler.phases import Action
from strangler.runbook import Runbook
from strangler.secrets import scrub
from strangler.spec import Spec
from strangler.verify.canonical import NATIVE_HASH_VERSION, pin_session, read_shape
from strangler.verify.report import TableReport, VerifyReport
from strangler.verify.table import Side, TableVerifier
from strangler.verify.watermark import SyncWatermark

__all__ = ["MODES", "run_verification", "verify_service"]

MODES = ("counts", "checksum", "rows")


def verify_service(
    spec: Spec,
    service: str,
    *,
    tables: list[str] | None = None,
    mode: str = "rows",
    recheck: int = 0,
    watermark: SyncWatermark | None = None,
    **tuning: Any,
) -> VerifyReport:
    """Compare each table of ``service`` in the monolith with its copy. Changes nothing."""
    svc = spec.service(service)
    if mode not in MODES:
        raise BadInput(f"unknown --mode {mode!r}", hint=f"use one of: {', '.join(MODES)}")
    chosen = tables or list(svc.tables)
    unknown = [t for t in chosen if t not in svc.tables]
    if unknown:
        raise BadInput(
            f"{service} does not move table(s) {', '.join(unknown)}; "
            f"it moves {', '.join(svc.tables)}",
            hint="pass --table with one of the service's tables, or none for all",
        )
    src_dsn, tgt_dsn = spec.source.dsn, spec.target_dsn(service)
    report = VerifyReport(service, mode, describe_dsn(src_dsn), describe_dsn(tgt_dsn))
    started = time.monotonic()
    with (
        connect(src_dsn, role="monolith") as src,
        connect(tgt_dsn, role=f"{service} target") as tgt,
        ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify") as pool,
    ):
        for conn in (src, tgt):
            pin_session(conn)
        encodings = [str(c.execute("SHOW server_encoding").fetchone()[0]) for c in (src, tgt)]  # type: ignore[index]
        if encodings[0] != encodings[1]:
            raise CheckFailed(
                f"the monolith's encoding is {encodings[0]} and the target's {encodings[1]}; "
                "row hashes would differ for any non-ASCII text",
                hint="create the target database with the monolith's encoding",
            )
        oldest = min(src.info.server_version, tgt.info.server_version)
        tuning.setdefault("native_hash", oldest >= NATIVE_HASH_VERSION)
        # A static copy is usually equal: one plain hash scan proves it. Under online sync
        # some rows are always in flight, so go straight to chunks.
        tuning.setdefault("whole_first", watermark is None)
        for table in chosen:
            s_shape = read_shape(src, spec.source.schema_, table)
            t_shape = read_shape(tgt, svc.target.schema_, table)
            if s_shape is None or t_shape is None:
                where = (
                    f"{spec.source.schema_}.{table} in the monolith"
                    if s_shape is None
                    else f"{svc.target.schema_}.{table} in the target"
                )
                missing = TableReport(
                    f"{spec.source.schema_}.{table}",
                    f"{svc.target.schema_}.{table}",
                    mode,
                    "none",
                    problems=[f"table {where} does not exist"],
                )
                report.tables.append(missing)
                continue
            verifier = TableVerifier(
                Side(src, s_shape),
                Side(tgt, t_shape),
                mode=mode,
                pool=pool,
                trim_scale=oldest >= 130000,
                recheck=recheck,
                watermark=watermark,
                **tuning,
            )
            try:
                report.tables.append(verifier.run())
            except psycopg.OperationalError as exc:
                raise DatabaseUnreachable(
                    f"lost a database while verifying {table}: {scrub(str(exc)).strip()}",
                    hint=f"check both servers are up, then run 'strangler verify {service}' again",
                ) from exc
            except psycopg.Error as exc:
                raise CheckFailed(
                    f"could not verify {table}: {scrub(str(exc)).strip()}",
                    hint="the roles in the DSNs need SELECT on the tables on both sides",
                ) from exc
    report.seconds = time.monotonic() - started
    return report


def run_verification(
    spec: Spec,
    journal: Journal,
    service: str,
    *,
    force: bool = False,
    reason: str | None = None,
    **options: Any,
) -> VerifyReport:
    """Verify inside the runbook's VERIFY step and journal the result as a ``verify`` event.

    A failed verification is a result, not a crash: the step ends ``ok`` without moving the
    phase, and the event after it says ``failed`` with the counts and the first differing keys
    (the event comes last so that ``strangler status`` shows the verdict, not the step).
    Only a verification that compared rows (``rows`` or ``checksum``) moves the phase.
    """
    runbook = Runbook(spec, journal, service)
    with runbook.step(Action.VERIFY, force=force, reason=reason) as step:
        report = verify_service(spec, service, **options)
        step.details.update(status=report.status, mode=report.mode)
        step.advance = report.passed and report.mode != "counts"
    journal.event(service, str(Action.VERIFY), status=report.status, details=report.summary())
    return report
