"""A server that accepts connections, reads what is sent and never answers: a teacher that hangs.

    with SilentServer() as s:
        s.url           # http://127.0.0.1:PORT/v1
        s.connections   # connections accepted so far

Real sockets on 127.0.0.1 in a background thread; no HTTP is spoken back.
"""

from __future__ import annotations

import selectors
import socket
import threading


class SilentServer:
    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/v1"
        self.connections = 0
        self._open: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._listener, selectors.EVENT_READ)
        while not self._stop.is_set():
            for key, _ in sel.select(timeout=0.05):
                if key.fileobj is self._listener:
                    conn, _ = self._listener.accept()
                    conn.setblocking(False)
                    self.connections += 1
                    self._open.append(conn)
                    sel.register(conn, selectors.EVENT_READ)
                    continue
                try:
                    data = key.fileobj.recv(65536)  # read the request, say nothing
                except OSError:
                    data = b""
                if not data:  # the client gave up and closed
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
        sel.close()

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._open:
            conn.close()
        self._listener.close()
