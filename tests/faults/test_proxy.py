"""The campaign's fault proxy tells a server when its client is gone.

A client killed with -9 in the middle of a transaction must end its session on the server,
as it does without the proxy (the kernel closes the socket): otherwise the dead session's
transaction keeps its locks, and every retry of the step waits on them for ever (a run x
kill-9 trial of the campaign hung that way).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.faults.proxy import FaultProxy
from tests.fix_pg import Db

# A transaction holding a lock, and the server's answer to its last statement left unread:
# a process killed with unread data resets its connections (RST), as most killed clients do.
CLIENT = """
import sys, time, psycopg
conn = psycopg.connect(sys.argv[1])
conn.execute("SELECT 1")  # the transaction begins
conn.pgconn.send_query(b"CREATE TABLE held (id int)")
time.sleep(1)
print("in transaction", flush=True)
time.sleep(600)
"""


def test_a_client_killed_in_a_transaction_ends_its_session_through_the_proxy(
    source_db: Db,
) -> None:
    port = source_db.instance.port
    proxy = FaultProxy(("127.0.0.1", port), name="test")
    try:
        dsn = source_db.dsn.replace(f"127.0.0.1:{port}/", f"127.0.0.1:{proxy.port}/")
        assert dsn != source_db.dsn
        client = subprocess.Popen(
            [sys.executable, "-c", CLIENT, dsn], stdout=subprocess.PIPE, text=True
        )
        assert client.stdout is not None and client.stdout.readline().strip() == "in transaction"
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'"
        assert source_db.execute(waiting) == [(1,)]
        client.send_signal(signal.SIGKILL)
        client.wait()
        deadline = time.monotonic() + 10
        while source_db.execute(waiting) != [(0,)]:
            assert time.monotonic() < deadline, "the server kept the dead client's transaction"
            time.sleep(0.1)
        # Its lock went with it: the table it was creating can be created now.
        source_db.execute("CREATE TABLE held (id int)")
    finally:
        proxy.stop()
