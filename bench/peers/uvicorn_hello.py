"""A raw ASGI hello for ``uvicorn --workers N``: the prefork peer of bench/prefork_scaling.py.

No framework, the same body as socketkit's hello; uvicorn parses HTTP with h11 (or
httptools when installed) and runs on uvloop when installed. For scale only: it is
a different stack, measured to show how each scales with workers.
"""

from __future__ import annotations

from typing import Any

_BODY = b"Hello, world!\n"
_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(_BODY))]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})
