"""A rich progress display of a copy: one line per table with rows, bytes, rate and ETA."""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

__all__ = ["RichCopyProgress"]


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024:
            return f"{n:,.0f} {unit}"
        n /= 1024
    return f"{n:,.1f} TB"


class RichCopyProgress:
    """Implements :class:`strangler.pg.copy.rows.CopyProgress`; use as a context manager."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description:<22}"),
            BarColumn(bar_width=20),
            TaskProgressColumn(),
            TextColumn("{task.completed:>12,.0f} rows"),
            TextColumn("{task.fields[size]:>10}"),
            TextColumn("{task.fields[rate]:>12}"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}
        self._bytes: dict[str, int] = {}
        # Rows and bytes of the chunks finished, per table: rows are only known when a chunk
        # ends, bytes flow every few MB, so in between the bar moves by bytes at the bytes
        # per row measured so far (issue 14: it jumped chunk by chunk).
        self._rows_done: dict[str, int] = {}
        self._bytes_done: dict[str, int] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> RichCopyProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def table_started(self, table: str, estimated_rows: int, chunks: int) -> None:
        with self._lock:
            self._tasks[table] = self._progress.add_task(
                table, total=max(estimated_rows, 1), size="", rate=""
            )
            self._bytes[table] = 0
            self._rows_done[table] = 0
            self._bytes_done[table] = 0

    _GUESS = 100  # bytes per row before a first chunk of the table has ended

    def advance(self, table: str, rows: int, nbytes: int) -> None:
        with self._lock:
            task = self._tasks.get(table)
            if task is None:
                return
            self._bytes[table] += nbytes
            current = self._progress.tasks[task]
            if rows:
                # A chunk ended: its rows are exact; what flowed meanwhile was its bytes.
                self._rows_done[table] += rows
                self._bytes_done[table] = self._bytes[table]
                # Never backwards: an estimate ahead of the rows counted waits for them.
                done = max(float(self._rows_done[table]), current.completed)
            else:
                per_row = (
                    self._bytes_done[table] / self._rows_done[table]
                    if self._rows_done[table]
                    else self._GUESS
                )
                in_flight = (self._bytes[table] - self._bytes_done[table]) / max(per_row, 1)
                ceiling = max((current.total or 0) - 1, self._rows_done[table])
                done = min(self._rows_done[table] + in_flight, ceiling)
                done = max(done, current.completed)
            total = max(current.total or 0, done)
            speed = current.speed or 0
            self._progress.update(
                task,
                completed=done,
                total=total,
                size=_size(self._bytes[table]) if self._bytes[table] else "",
                rate=f"{speed:,.0f} rows/s" if speed else "",
            )

    def finish(self) -> None:
        """Mark every table complete (the estimate of rows was only an estimate)."""
        with self._lock:
            for table, task in self._tasks.items():
                current = self._progress.tasks[task]
                rows = self._rows_done.get(table) or current.completed or 1
                self._progress.update(task, total=rows, completed=rows)
