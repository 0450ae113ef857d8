"""gevent's StreamServer: a greenlet per connection."""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import signal  # noqa: E402

from _common import answer, args  # noqa: E402
from gevent.server import StreamServer  # noqa: E402

service, port = args()


def handle(sock: object, address: object) -> None:
    buffer = bytearray()
    while data := sock.recv(65536):  # type: ignore[attr-defined]
        if service == "echo":
            sock.sendall(data)  # type: ignore[attr-defined]
            continue
        buffer += data
        reply, close = answer(buffer)
        sock.sendall(reply)  # type: ignore[attr-defined]
        if close:
            return


server = StreamServer(("127.0.0.1", port), handle, backlog=4096)
signal.signal(signal.SIGTERM, lambda *_: server.stop(timeout=1))
signal.signal(signal.SIGINT, lambda *_: server.stop(timeout=1))
server.serve_forever()
