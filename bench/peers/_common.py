"""What every peer server shares, so each does the same work per request.

hello: answer each complete HTTP request head with "Hello, world!" (keep-alive;
close after the reply when the request says ``Connection: close``), with a Date
header rebuilt once a second, as socketkit's hello does. echo: send back the
bytes received. Usage of every peer: ``python PEER.py hello|echo PORT``; it
serves on 127.0.0.1:PORT until SIGINT/SIGTERM.
"""

from __future__ import annotations

import email.utils
import resource
import sys
import time

_BODY = b"Hello, world!\n"
_cache: dict[str, object] = {"second": -1}


def _responses() -> tuple[bytes, bytes]:
    now = int(time.time())
    if _cache["second"] != now:
        head = (
            "HTTP/1.1 200 OK\r\n"
            f"Date: {email.utils.formatdate(now, usegmt=True)}\r\n"
            "Server: peer\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(_BODY)}\r\n"
        ).encode()
        _cache.update(
            second=now, keep=head + b"\r\n" + _BODY, close=head + b"Connection: close\r\n\r\n" + _BODY
        )
    return _cache["keep"], _cache["close"]  # type: ignore[return-value]


def answer(buffer: bytearray) -> tuple[bytes, bool]:
    """Replies to every complete request in ``buffer`` (consumed), and whether to close after them."""
    keep, close = _responses()
    out = []
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return b"".join(out), False
        head = bytes(buffer[:end]).lower()
        del buffer[: end + 4]
        if b"connection: close" in head:
            out.append(close)
            return b"".join(out), True
        out.append(keep)


def args() -> tuple[str, int]:
    """(service, port) from the command line; raises the descriptor limit for many connections."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    service, port = sys.argv[1], int(sys.argv[2])
    if service not in ("hello", "echo"):
        raise SystemExit(f"usage: {sys.argv[0]} hello|echo PORT")
    return service, port
