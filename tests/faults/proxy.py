"""A TCP proxy on loopback that a test can cut: drop every connection, or stall them.

Everything strangler says to a server in a fault trial goes through one of these: ordinary
sessions, the ``COPY`` streams of a copy, the replication stream of sync, a router's API.
:meth:`FaultProxy.drop` resets every open connection (as a network that went away does) and
refuses new ones for a while; :meth:`FaultProxy.stall` stops forwarding bytes in both
directions for a while, connections kept open (as a congested or partitioned link does), then
lets the held bytes through. In the spirit of psycopg's ``tests/fix_proxy.py``, but
in-process and without an external binary.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

__all__ = ["FaultProxy"]


class FaultProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream`` (host, port) until :meth:`stop`."""

    def __init__(self, upstream: tuple[str, int], *, name: str = "proxy") -> None:
        self.upstream = upstream
        self.name = name
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._flowing = threading.Event()
        self._flowing.set()
        self._refuse_until = 0.0
        self._stopped = threading.Event()
        self.connections = 0  # accepted since start, for tests that want to see traffic
        threading.Thread(target=self._accept, daemon=True, name=f"{name}-accept").start()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    # ------------------------------------------------------------------------ faults

    def drop(self, refuse_for: float = 0.0) -> int:
        """Reset every open connection; refuse new ones for ``refuse_for`` seconds. Returns
        how many connections were cut."""
        with self._lock:
            self._refuse_until = time.monotonic() + refuse_for
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for sock in pair:
                _reset(sock)
        return len(pairs)

    def stall(self, seconds: float) -> None:
        """Hold every byte for ``seconds`` (in a thread of its own), then let them through."""
        self._flowing.clear()

        def resume() -> None:
            self._stopped.wait(seconds)
            self._flowing.set()

        threading.Thread(target=resume, daemon=True, name=f"{self.name}-stall").start()

    def heal(self) -> None:
        """Forward again at once, and accept new connections."""
        with self._lock:
            self._refuse_until = 0.0
        self._flowing.set()

    def stop(self) -> None:
        self._stopped.set()
        self._flowing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.drop()

    # ---------------------------------------------------------------------- plumbing

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refuse = time.monotonic() < self._refuse_until
            if refuse:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._pairs.append((client, server))
                self.connections += 1
            for a, b in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pump, args=(a, b), daemon=True, name=f"{self.name}-pump"
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    return
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            _reset(src)
            _reset(dst)
        finally:
            with self._lock:
                self._pairs = [p for p in self._pairs if src not in p]


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a peer that vanished does.

    Shut down first: ``close()`` alone does not end a socket that the other pump thread is
    blocked reading (the pending ``recv`` holds it open, and nothing is sent), so a server
    whose client was killed with -9 never learned it and kept the dead session's transaction
    open, its locks blocking every retry (a run x kill-9 trial hung on them)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
