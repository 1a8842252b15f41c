"""Write load from pgbench (the embedded wheel's), kept running through faults.

Online worlds write to the moved tables on whichever side owns the writes: the monolith's
``public`` until the cutover, the service schema after. Worlds whose moved tables must not
change (strategy ``copy``, which asks the monolith to stop writing them; decommission, which
retires them) write to a table that stays behind instead, so the monolith is busy all the same.
pgbench ends a client at the first error (a write refused by strangler's gate, a server that
restarted): :class:`PgbenchLoad` starts it again until stopped. The application's own
connections go straight to the server, never through the fault proxy: only strangler's
connections are cut.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
from pathlib import Path

from strangler.pg.embedded import embedded_bin_dir

__all__ = ["PgbenchLoad", "script"]

_ORDERS = """\
\\set cid random(1, 30)
\\set pid random(1, 10)
\\set gone random(1, 400)
BEGIN;
INSERT INTO {s}.orders (customer_id, total, notes) VALUES (:cid, 10, 'pgbench')
    RETURNING id AS oid \\gset
INSERT INTO {s}.order_items (order_id, product_id, quantity, unit_price) VALUES (:oid, :pid, 1, 5);
INSERT INTO {s}.order_status_history (order_id, status, changed_at) VALUES (:oid, 'pending', now());
UPDATE {s}.orders SET total = total + 1, updated_at = now() WHERE id = :oid - 3;
UPDATE {s}.order_items SET quantity = quantity + 1 WHERE order_id = :cid;
DELETE FROM {s}.orders WHERE id = :gone AND :gone % 7 = 0;
END;
"""

_STAYING = """\
\\set cid random(1, 30)
UPDATE public.customers SET full_name = 'Customer ' || :cid || ' (pgbench)' WHERE id = :cid;
"""


def script(target: str) -> str:
    """The pgbench script for ``target``: a schema holding the moved tables, or ``staying``
    for a table the migration leaves alone."""
    return _STAYING if target == "staying" else _ORDERS.format(s=target)


class PgbenchLoad:
    """``clients`` pgbench clients at about ``rate`` transactions/s until :meth:`stop`."""

    def __init__(
        self, dsn: str, target: str, workdir: Path, *, clients: int = 2, rate: int = 40
    ) -> None:
        self.dsn = dsn
        workdir.mkdir(parents=True, exist_ok=True)
        self.script = workdir / f"load-{target}.sql"
        self.script.write_text(script(target))
        self.clients = clients
        self.rate = rate
        self.starts = 0
        self._stop = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="pgbench")

    def start(self) -> PgbenchLoad:
        self._thread.start()
        return self

    def _loop(self) -> None:
        exe = embedded_bin_dir() / "pgbench"
        while not self._stop.is_set():
            with self._lock:
                if self._stop.is_set():
                    return
                self._proc = subprocess.Popen(
                    [
                        str(exe), "-n", "-c", str(self.clients), "-T", "3600",
                        "-R", str(self.rate), "-f", str(self.script), self.dsn,
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
                self.starts += 1
            self._proc.wait()
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            proc = self._proc
        if proc is not None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self._thread.join(timeout=10)
