"""The WebSocket opening handshake (RFC 6455 §4), sans-IO: a client's upgrade request
judged and answered, and a client's request made and the server's answer checked.

Why apart: the handshake is HTTP, read by the HTTP request codec (as strict as h11),
and needs only ``hashlib`` and ``base64``; the frames after it know nothing of it.
A request that is not a valid upgrade gets the status RFC 6455 names (400, or 426
with the version spoken for another version), never a half-open WebSocket.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence

from ..errors import RemoteProtocolError
from .http_messages import Request

__all__ = [
    "HandshakeRefused",
    "accept_key",
    "check_response",
    "client_request",
    "new_key",
    "server_response",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class HandshakeRefused(RemoteProtocolError):
    """An upgrade request that cannot be accepted: ``status`` and ``response`` say why."""

    def __init__(self, status: int, reason: str, extra: bytes = b"") -> None:
        super().__init__(reason)
        self.status = status
        body = reason.encode() + b"\n"
        phrase = {400: b"Bad Request", 426: b"Upgrade Required"}[status]
        self.response = (
            b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
            b"%sConnection: close\r\n\r\n%s" % (status, phrase, len(body), extra, body)
        )


def accept_key(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for the client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1(key + _GUID, usedforsecurity=False).digest())  # (the RFC's)


def new_key() -> bytes:
    """A fresh ``Sec-WebSocket-Key``: 16 random bytes, base64."""
    return base64.b64encode(os.urandom(16))


def _tokens(value: bytes | None) -> set[bytes]:
    return {token.strip().lower() for token in (value or b"").split(b",") if token.strip()}


def server_response(
    request: Request, subprotocols: Sequence[str] = (), extensions: str | None = None
) -> tuple[bytes, str | None]:
    """The ``101 Switching Protocols`` answering ``request``, and the subprotocol chosen
    (the first of ``subprotocols``, in our order, that the client offers; None if none).
    ``extensions``: the ``Sec-WebSocket-Extensions`` agreed (:mod:`.websocket_deflate`).

    Raises:
        HandshakeRefused: not a WebSocket upgrade (400), or another version (426).
    """
    if request.method != b"GET":
        raise HandshakeRefused(400, f"a WebSocket upgrade is a GET, not {request.method.decode('latin-1')}")
    if request.version != b"HTTP/1.1":
        raise HandshakeRefused(400, "a WebSocket upgrade needs HTTP/1.1")
    if b"websocket" not in _tokens(request.header(b"upgrade")):
        raise HandshakeRefused(400, "not a WebSocket upgrade: no 'Upgrade: websocket'")
    if b"upgrade" not in _tokens(request.header(b"connection")):
        raise HandshakeRefused(400, "not a WebSocket upgrade: no 'Connection: Upgrade'")
    version = request.header(b"sec-websocket-version")
    if version != b"13":
        raise HandshakeRefused(
            426, "this server speaks WebSocket version 13", b"Sec-WebSocket-Version: 13\r\n"
        )
    key = request.header(b"sec-websocket-key") or b""
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 16:
        raise HandshakeRefused(400, "Sec-WebSocket-Key must be 16 bytes in base64")
    offered = [
        token.strip().decode("latin-1")
        for name, value in request.headers
        if name == b"sec-websocket-protocol"
        for token in value.split(b",")
        if token.strip()
    ]
    chosen = next((protocol for protocol in subprotocols if protocol in offered), None)
    response = (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n"
    )
    if chosen is not None:
        response += b"Sec-WebSocket-Protocol: " + chosen.encode() + b"\r\n"
    if extensions:
        response += b"Sec-WebSocket-Extensions: " + extensions.encode() + b"\r\n"
    return response + b"\r\n", chosen


def client_request(
    host: str,
    path: str,
    key: bytes,
    *,
    origin: str | None = None,
    subprotocols: Sequence[str] = (),
    extensions: str | None = None,
) -> bytes:
    """A client's upgrade request for ``path`` on ``host`` (``host:port`` unless the default);
    ``extensions``: the ``Sec-WebSocket-Extensions`` offered."""
    lines = [
        f"GET {path or '/'} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin:
        lines.append(f"Origin: {origin}")
    if subprotocols:
        lines.append(f"Sec-WebSocket-Protocol: {', '.join(subprotocols)}")
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def check_response(
    status: int, headers: Sequence[tuple[bytes, bytes]], key: bytes, subprotocols: Sequence[str] = ()
) -> str | None:
    """The subprotocol the server chose, once its answer is checked as a client must.

    Raises:
        RemoteProtocolError: not a 101, no upgrade to websocket, a wrong accept key, or a
            subprotocol the client did not offer.
    """
    fields: dict[bytes, bytes] = {}
    for name, value in headers:
        fields.setdefault(name.lower(), value.strip())
    if status != 101:
        raise RemoteProtocolError(f"the server refused the WebSocket upgrade: HTTP {status}")
    if b"websocket" not in _tokens(fields.get(b"upgrade")) or b"upgrade" not in _tokens(
        fields.get(b"connection")
    ):
        raise RemoteProtocolError("the server's 101 does not upgrade to websocket")
    if fields.get(b"sec-websocket-accept") != accept_key(key):
        raise RemoteProtocolError("the server's Sec-WebSocket-Accept does not match our key")
    chosen = fields.get(b"sec-websocket-protocol")
    if chosen is None:
        return None
    protocol = chosen.decode("latin-1")
    if protocol not in subprotocols:
        raise RemoteProtocolError(f"the server chose subprotocol {protocol!r}, which we did not offer")
    return protocol
