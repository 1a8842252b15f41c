"""What a verification found, as data: per table the method, counts and the rows that differ.

The same objects feed the rich table of the CLI, ``--output json`` (:meth:`VerifyReport.to_dict`,
every row), the journal entry (:meth:`VerifyReport.summary`, counts and the first keys) and the
Markdown section of the migration report (:meth:`VerifyReport.markdown`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ChunkDiff", "RowDiff", "TableReport", "VerifyReport"]

Key = dict[str, str]
RowKind = Literal["missing", "extra", "changed"]


@dataclass(frozen=True)
class RowDiff:
    """One row that differs, named by its primary key.

    ``missing``: in the source, not in the target; ``extra``: in the target only (a duplicate
    key in a target that lacks the constraint counts as extra); ``changed``: on both sides with
    different values, ``columns`` naming which.
    """

    kind: RowKind
    key: Key
    columns: tuple[str, ...] = ()

    def key_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.key.items())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "key": self.key}
        if self.kind == "changed":
            out["columns"] = list(self.columns)
        return out


@dataclass(frozen=True)
class ChunkDiff:
    """A key range whose hash differs (``--mode checksum`` stops here)."""

    low: str | None
    high: str | None
    source_rows: int
    target_rows: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "from": self.low,
            "below": self.high,
            "source_rows": self.source_rows,
            "target_rows": self.target_rows,
        }


@dataclass
class TableReport:
    source: str
    target: str
    mode: str
    method: str
    weaker: bool = False
    source_rows: int = 0
    target_rows: int = 0
    chunks: int = 0
    differing_chunks: list[ChunkDiff] = field(default_factory=list)
    rows: list[RowDiff] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    cleared_by_recheck: int = 0
    rows_fetched: int = 0  # (key, hash) pairs read from both sides to name rows; 0 when equal
    first_pass: str = ""  # "whole table" or "chunks": what the first scan of each side hashed
    seconds: float = 0.0

    def of(self, kind: RowKind) -> list[RowDiff]:
        return [r for r in self.rows if r.kind == kind]

    @property
    def passed(self) -> bool:
        return (
            not self.problems
            and not self.rows
            and not self.differing_chunks
            and self.source_rows == self.target_rows
        )

    def counts(self) -> dict[str, int]:
        return {k: len(self.of(k)) for k in ("missing", "extra", "changed")}

    def to_dict(self, *, limit: int | None = None) -> dict[str, Any]:
        rows = self.rows if limit is None else self.rows[:limit]
        return {
            "source": self.source,
            "target": self.target,
            "mode": self.mode,
            "method": self.method,
            "weaker": self.weaker,
            "passed": self.passed,
            "source_rows": self.source_rows,
            "target_rows": self.target_rows,
            "chunks": self.chunks,
            "differing_chunks": [c.to_dict() for c in self.differing_chunks[: limit or None]],
            "counts": self.counts(),
            "rows": [r.to_dict() for r in rows],
            "problems": self.problems,
            "cleared_by_recheck": self.cleared_by_recheck,
            "rows_fetched": self.rows_fetched,
            "first_pass": self.first_pass,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class VerifyReport:
    service: str
    mode: str
    source: str
    target: str
    tables: list[TableReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(t.passed for t in self.tables)

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "mode": self.mode,
            "status": self.status,
            "source": self.source,
            "target": self.target,
            "seconds": round(self.seconds, 3),
            "tables": [t.to_dict() for t in self.tables],
        }

    def summary(self, first: int = 20) -> dict[str, Any]:
        """For the journal: counts per table and the first ``first`` differing keys."""
        return {
            "mode": self.mode,
            "seconds": round(self.seconds, 3),
            "tables": {
                t.source: {
                    "passed": t.passed,
                    "method": t.method,
                    "source_rows": t.source_rows,
                    "target_rows": t.target_rows,
                    **t.counts(),
                    "differing_chunks": len(t.differing_chunks),
                    "problems": t.problems,
                    "first": [r.to_dict() for r in t.rows[:first]],
                }
                for t in self.tables
            },
        }

    def markdown(self, first: int = 10) -> str:
        """A concise section for the migration report."""
        verdict = "**passed**" if self.passed else "**FAILED: do not proceed with cutover**"
        lines = [
            f"### Verification of `{self.service}` ({self.mode}): {verdict}",
            "",
            f"Source `{self.source}`, target `{self.target}`, {self.seconds:.1f} s.",
            "",
            "| table | method | source rows | target rows | missing | extra | changed | result |",
            "|---|---|---:|---:|---:|---:|---:|---|",
        ]
        for t in self.tables:
            c = t.counts()
            lines.append(
                f"| `{t.source}` | {t.method}{' (weaker)' if t.weaker else ''} | "
                f"{t.source_rows:,} | {t.target_rows:,} | {c['missing']} | {c['extra']} | "
                f"{c['changed']} | {'passed' if t.passed else 'failed'} |"
            )
        for t in self.tables:
            if t.passed:
                continue
            lines += ["", f"`{t.source}`:"]
            lines += [f"- {p}" for p in t.problems]
            for r in t.rows[:first]:
                cols = f" (columns: {', '.join(r.columns)})" if r.columns else ""
                lines.append(f"- {r.kind} row {r.key_text()}{cols}")
            if len(t.rows) > first:
                lines.append(f"- … and {len(t.rows) - first} more (see `--output json`)")
            for ch in t.differing_chunks[:first]:
                lines.append(
                    f"- key range [{ch.low}, {ch.high}) differs: {ch.source_rows} source rows, "
                    f"{ch.target_rows} target rows"
                )
        return "\n".join(lines) + "\n"
