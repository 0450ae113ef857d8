"""A client's WebSocket upgrade: what ``connect("ws://host:port/path")`` adds to a stream.

Why apart from the client: a ``ws://`` URL names a TCP (``wss://``: TLS) stream plus a
path, and the connection becomes a WebSocket only after an HTTP exchange. The
client connects the stream as for any URL (happy eyeballs, TLS, timeouts), then
:func:`upgrade` sends the request and checks the answer (status 101, the accept key,
the subprotocol); what the server sent after its answer is the first frames'. From
there the :class:`~socketkit.codecs.websocket.WebSocketClient` codec frames it.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from .codecs import Codec, WebSocket
from .codecs._http_head import split_fields
from .codecs.websocket import WebSocketClient
from .codecs.websocket_handshake import check_response, client_request, new_key
from .errors import RemoteProtocolError
from .tls import TlsStream

__all__ = ["Upgrade", "WebSocketTarget", "upgrade", "websocket_for", "websocket_target"]

_MAX_HEAD = 16384


@dataclass(frozen=True, slots=True)
class WebSocketTarget:
    """A ``ws://`` or ``wss://`` URL taken apart: the stream to connect, and the request's
    ``Host`` and path."""

    stream_url: str
    host: str
    path: str


def websocket_target(url: str) -> WebSocketTarget | None:
    """``url`` as a WebSocket target, or None when it is not a ``ws://`` or ``wss://`` URL.

    Raises:
        ValueError: a ws URL without a host, or with a bad port.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("ws", "wss"):
        return None
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{url!r} has no host: write ws://HOST:PORT/PATH")
    try:
        port = parts.port or (443 if scheme == "wss" else 80)
    except ValueError:
        raise ValueError(f"{url!r} has a bad port: write ws://HOST:PORT/PATH with a port 0-65535") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = port == (443 if scheme == "wss" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    stream = f"{'tls' if scheme == 'wss' else 'tcp'}://{host}:{port}"
    return WebSocketTarget(stream, host if default else f"{host}:{port}", path)


def websocket_for(url: object, codec: Codec | None) -> tuple[WebSocketTarget | None, Codec | None]:
    """What a client's ``connect(url, codec)`` connects to: for a ws:// or wss:// URL its
    target and codec (``WebSocket()`` unless given), else (None, ``codec``) as given.

    Raises:
        ValueError: a bad ws URL. TypeError: a codec that does not speak WebSocket for one.
    """
    target = websocket_target(url) if isinstance(url, str) else None
    if target is None:
        return None, codec
    codec = codec if codec is not None else WebSocket()
    if not isinstance(codec.client_side(), WebSocketClient):
        raise TypeError(f"{url} is a WebSocket URL: its codec is socketkit.WebSocket, not {codec.name}")
    return target, codec


class Upgrade:
    """One upgrade's two halves, for a blocking or an async client alike: the request to send,
    then :meth:`answer` fed what the server sends until it has the whole answer. ``codec``
    (the connection's own) says the subprotocols and extensions to offer, and is told
    which extensions were agreed (:meth:`WebSocketClient.agree`)."""

    def __init__(self, target: WebSocketTarget, codec: WebSocketClient) -> None:
        self._key = new_key()
        self._codec = codec
        self._received = b""
        #: the bytes to send first
        self.request = client_request(
            target.host, target.path, self._key, subprotocols=codec.subprotocols, extensions=codec.extensions
        )
        #: the subprotocol the server chose, once answered
        self.subprotocol: str | None = None

    def answer(self, data: bytes) -> bytes | None:
        """Feed what the server sent: None while its answer is incomplete, then what came
        after it (the first frames' bytes, often b"").

        Raises:
            RemoteProtocolError: the server refused (its status), ended first, or did not
                upgrade as it must.
        """
        if not data:
            raise RemoteProtocolError("the server closed the connection instead of answering the upgrade")
        self._received += data
        end = self._received.find(b"\r\n\r\n")
        if end < 0:
            if len(self._received) > _MAX_HEAD:
                raise RemoteProtocolError(f"the server's answer to the upgrade is over {_MAX_HEAD} bytes")
            return None
        head, rest = self._received[: end + 2], self._received[end + 4 :]
        status_line = head.split(b"\r\n", 1)[0].split(b" ")
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/") or not status_line[1].isdigit():
            raise RemoteProtocolError("the server did not answer the upgrade with HTTP")
        fields = split_fields(head)
        self.subprotocol = check_response(int(status_line[1]), fields, self._key, self._codec.subprotocols)
        self._codec.agree([value for name, value in fields if name.lower() == b"sec-websocket-extensions"])
        return rest


def upgrade(
    stream: socket.socket | TlsStream, target: WebSocketTarget, codec: WebSocketClient
) -> tuple[bytes, str | None]:
    """The handshake on a connected blocking ``stream``: (what the server sent after its
    answer, the subprotocol it chose); ``codec`` is told the extensions agreed. Waits as
    long as the stream's timeout.

    Raises:
        RemoteProtocolError: the server refused (its status), or did not upgrade as it must.
        OSError: the stream broke or timed out.
    """
    handshake = Upgrade(target, codec)
    stream.sendall(handshake.request)
    while (rest := handshake.answer(stream.recv(4096))) is None:
        pass
    return rest, handshake.subprotocol
