"""hello: HTTP/1.1 "Hello, world!", the tutorials' threaded web server done right.

Keep-alive and pipelining come from the HttpRequest codec; ``Connection:
close`` (or HTTP/1.0 without keep-alive) is honoured by closing after the
reply; HEAD gets the headers alone; other methods get 405. This is the service
the benchmarks use, so the common reply is prebuilt bytes, refreshed once a
second for the Date header, not rendered per request.
"""

from __future__ import annotations

import email.utils
import time

from ..codecs.http import HttpRequest, HttpResponse, Request, render_response
from ..connection import Connection
from ..handlers import Protocol
from . import Service

BODY = b"Hello, world!\n"
_time = time.time


class _Replies:
    """The prebuilt responses, rebuilt when the second changes."""

    __slots__ = ("expires", "get", "get_close", "head", "head_close")

    def __init__(self) -> None:
        self.expires = 0.0
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the replies for this second; they expire when it ends."""
        now = int(time.time())
        self.expires = now + 1.0
        headers = [
            ("Date", email.utils.formatdate(now, usegmt=True)),
            ("Server", "socketkit"),
            ("Content-Type", "text/plain; charset=utf-8"),
        ]
        self.get = render_response(HttpResponse(200, BODY, headers))
        self.get_close = render_response(HttpResponse(200, BODY, headers, close=True))
        self.head = render_response(HttpResponse(200, BODY, headers, head_only=True))
        self.head_close = render_response(HttpResponse(200, BODY, headers, close=True, head_only=True))


class Hello(Protocol):
    """Answers every GET and HEAD with "Hello, world!"."""

    serves_datagrams = False  # HTTP needs a connection

    def __init__(self) -> None:
        self._replies = _Replies()
        self._not_allowed = render_response(
            HttpResponse(405, b"405 Method Not Allowed\n", [("Allow", "GET, HEAD")], close=True)
        )

    def on_message(self, conn: Connection, message: Request) -> None:
        replies = self._replies
        if _time() >= replies.expires:
            replies.refresh()
        method = message.method
        if method == b"GET":
            conn.send(replies.get if message.keep_alive else replies.get_close)
        elif method == b"HEAD":
            conn.send(replies.head if message.keep_alive else replies.head_close)
        else:
            conn.send(self._not_allowed)
            conn.close()
            return
        if not message.keep_alive:
            conn.close()


def service() -> Service:
    return Service("hello", "HTTP hello world", Hello(), codec=HttpRequest(), codec_selectable=False)
