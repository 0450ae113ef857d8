"""The floor: a bare selectors loop with no framework."""

from __future__ import annotations

import selectors
import signal
import socket

from _common import answer, args

service, port = args()
selector = selectors.DefaultSelector()
listener = socket.create_server(("127.0.0.1", port), backlog=4096)
listener.setblocking(False)
buffers: dict[socket.socket, bytearray] = {}
running = True


def stop(*_: object) -> None:
    global running
    running = False


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
selector.register(listener, selectors.EVENT_READ, None)
while running:
    for key, _ in selector.select(0.5):
        if key.data is None:
            try:
                while True:
                    conn, _ = listener.accept()
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    buffers[conn] = bytearray()
                    selector.register(conn, selectors.EVENT_READ, True)
            except BlockingIOError:
                continue
        conn = key.fileobj  # type: ignore[assignment]
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        close = not data
        if data:
            if service == "echo":
                reply = data
            else:
                buffers[conn] += data
                reply, close = answer(buffers[conn])
            try:
                conn.sendall(reply)  # replies are small or echoed; a full buffer blocks briefly
            except OSError:
                close = True
        if close:
            selector.unregister(conn)
            buffers.pop(conn, None)
            conn.close()
