"""A TCP proxy on loopback whose open connections can be made to go silent: the fault
of a connection a network left open that carries nothing any more. Neither end sees
it close; connections opened after `stall()` pass as before."""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

__all__ = ["StallingProxy"]


class StallingProxy:
    """Forwards 127.0.0.1:`port` to `upstream` (host, port), one thread per direction."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._stalled: list[threading.Event] = []
        self._sockets: list[socket.socket] = [self._listener]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        """From now on, the connections open now carry nothing either way."""
        with self._lock:
            for stalled in self._stalled:
                stalled.set()

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def __enter__(self) -> StallingProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            server = socket.create_connection(self.upstream, timeout=10)
            server.settimeout(None)
            stalled = threading.Event()
            with self._lock:
                self._stalled.append(stalled)
                self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=_pump, args=(source, sink, stalled), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket, stalled: threading.Event) -> None:
    while True:
        try:
            data = source.recv(65536)
            if not data:
                if not stalled.is_set():
                    sink.shutdown(socket.SHUT_WR)
                return
            if not stalled.is_set():
                sink.sendall(data)
        except OSError:  # either end closed
            return
