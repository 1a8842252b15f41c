"""The copy's progress bar moves with the bytes between chunk ends, never backwards, and ends
on the rows really copied (issue 14: it jumped chunk by chunk)."""

from __future__ import annotations

import io
import itertools

from rich.console import Console

from strangler.render.progress import RichCopyProgress


def test_the_bar_moves_with_bytes_and_ends_on_the_rows_copied() -> None:
    progress = RichCopyProgress(Console(file=io.StringIO(), width=120))
    seen: list[float] = []
    with progress:
        progress.table_started("orders", estimated_rows=100_000, chunks=2)
        task = progress._tasks["orders"]

        def completed() -> float:
            return float(progress._progress.tasks[task].completed)

        for _ in range(5):  # bytes inside the first chunk: no rows known yet
            progress.advance("orders", 0, 1 << 19)
            seen.append(completed())
        progress.advance("orders", 50_000, 1 << 19)  # the first chunk ends
        seen.append(completed())
        for _ in range(5):
            progress.advance("orders", 0, 1 << 19)
            seen.append(completed())
        progress.advance("orders", 49_000, 1000)
        seen.append(completed())
        progress.finish()
        final = completed()
    assert all(b >= a for a, b in itertools.pairwise(seen))  # never backwards
    assert len(set(seen[:5])) == 5  # it moved inside the first chunk
    assert len(set(seen[6:11])) == 5  # and inside the second, at the measured bytes per row
    assert final == 99_000  # the rows copied, not the estimate
