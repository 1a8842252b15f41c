"""Verify pairs of tables: the monolith's and the service's, hashed on both servers at once.

:func:`verify_tables` only reads; the step (:mod:`strangler.steps.verify`) maps a service's
tables from the spec, journals every result and moves the phase on a pass.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from strangler.errors import BadInput, CheckFailed, DatabaseUnreachable
from strangler.pg.connect import connect, describe_dsn
from strangler.secrets import scrub
from strangler.verify.canonical import NATIVE_HASH_VERSION, pin_session, read_shape
from strangler.verify.report import TableReport, VerifyReport
from strangler.verify.table import Side, TableVerifier
from strangler.verify.watermark import SyncWatermark

__all__ = ["MODES", "verify_tables"]

MODES = ("counts", "checksum", "rows")


def verify_tables(
    service: str,
    src_dsn: str,
    src_schema: str,
    tgt_dsn: str,
    tgt_schema: str,
    tables: Sequence[str],
    *,
    mode: str = "rows",
    recheck: int = 0,
    watermark: SyncWatermark | None = None,
    **tuning: Any,
) -> VerifyReport:
    """Compare each of ``tables`` in ``src_schema`` with its twin in ``tgt_schema``.

    Changes nothing. ``watermark``: the online sync's, so a difference still in flight is
    read again once sync has applied past it (``recheck`` times at most)."""
    if mode not in MODES:
        raise BadInput(f"unknown --mode {mode!r}", hint=f"use one of: {', '.join(MODES)}")
    chosen = list(tables)
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
        # Without online sync the table's row width chooses the first scan (TableVerifier);
        # under it some rows are always in flight, so go straight to chunks.
        tuning.setdefault("whole_first", None if watermark is None else False)
        for table in chosen:
            s_shape = read_shape(src, src_schema, table)
            t_shape = read_shape(tgt, tgt_schema, table)
            if s_shape is None or t_shape is None:
                where = (
                    f"{src_schema}.{table} in the monolith"
                    if s_shape is None
                    else f"{tgt_schema}.{table} in the target"
                )
                missing = TableReport(
                    f"{src_schema}.{table}",
                    f"{tgt_schema}.{table}",
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
