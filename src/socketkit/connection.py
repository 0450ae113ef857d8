"""Connection: what a handler sees of one peer.

Why an abstract base with per-engine subclasses: a handler must not care how it
is run, but "send" means different things underneath: a blocking write with a
deadline on a thread engine, an append to an output buffer flushed by the event
loop on a reactor, a ``sendto`` for a datagram. The base holds what is common
(peer, codec, per-connection counters, a ``state`` dict for the handler's own
data); the engines supply the transport.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

from .codecs import Codec
from .endpoints import format_url
from .errors import ClosedError
from .stats import Counters

__all__ = ["Connection"]


class Connection(Counters):
    """One peer of a server, as its handler sees it.

    Attributes:
        peer: the peer's address as the socket module gives it.
        local: our address for this connection.
        peer_url: the peer as a URL-like string, for logs ("tcp://127.0.0.1:50312").
        codec: the codec that frames this connection's messages.
        state: a dict for the handler's own per-connection data.
        listener: the URL of the endpoint it arrived on (``"tcp://127.0.0.1:8888"``).

    ``local``, ``peer_url`` and ``state`` are made on first use: a server
    holding ten thousand idle connections should not pay for them up front.
    """

    __slots__ = ("_closed", "_local", "_peer_url", "_scheme", "_state", "codec", "peer")

    def __init__(self, codec: Codec, peer: Any, local: Any, scheme: str, listener: str = "") -> None:
        self.bytes_in = self.bytes_out = self.messages_in = self.messages_out = 0
        self.listener = listener
        self.codec = codec
        self.peer = peer
        self._local = local  # None: ask the socket when first wanted
        self._scheme = scheme
        self._peer_url: str | None = None
        self._state: dict[str, Any] | None = None
        self._closed = False

    @property
    def peer_url(self) -> str:
        url = self._peer_url
        if url is None:
            url = self._peer_url = format_url(self._scheme, self.peer)
        return url

    @property
    def local(self) -> Any:
        local = self._local
        if local is None:
            local = self._local = self._find_local()
        return local

    def _find_local(self) -> Any:
        """Our address, when it was not known at accept time (None if it cannot be had)."""
        return None

    @property
    def state(self) -> dict[str, Any]:
        state = self._state
        if state is None:
            state = self._state = {}
        return state

    @property
    def closed(self) -> bool:
        """True once the connection is closed or closing."""
        return self._closed

    @property
    def write_buffer_size(self) -> int:
        """Bytes accepted by ``send`` and not yet handed to the kernel."""
        return 0

    def send(self, message: Any) -> None:
        """Encode ``message`` with the codec and send it.

        Raises:
            ClosedError: the connection is closed.
            LocalProtocolError / TypeError: the codec cannot encode the message.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Close after flushing what was already sent. Safe to call twice."""
        raise NotImplementedError

    def set_limits(self, *, idle_timeout: float | None = None, read_timeout: float | None = None) -> None:
        """This connection's own timeouts, in place of the server's (``Limits``) from now on:
        a login prompt that waits 10 s, a subscriber that may stay silent an hour. Safe from
        any thread; a deadline that moves earlier is re-armed.

        Raises:
            ValueError: a timeout that is not a positive finite number of seconds.
            TypeError: a datagram's sender (a datagram has no connection to time out).
        """
        raise TypeError("a datagram has no connection to time out: set_limits is for streams")

    def start_tls(self, context: ssl.SSLContext) -> None:
        """STARTTLS: upgrade this plain connection to TLS (``context``: a server's, from
        :func:`socketkit.tls.server_context`), in answer to the peer's request.

        What this handler call sends (or returns) goes in the clear, the go-ahead ("220
        Ready to start TLS"); the peer's next bytes are its handshake, and everything sent
        after it is encrypted. Anything the peer sent after its request and before the
        handshake is refused as bad input (it could have been injected on the path). On
        every engine; from a ``@blocking`` ``fn(conn)`` handler on threads or iterative.

        Raises:
            ClosedError: the connection is closed.
            ValueError: TLS is on already.
            RuntimeError: not called by the handler (or from a pool thread's ``fn(conn)``).
            TypeError: a datagram's sender (a datagram has no connection to secure).
        """
        raise TypeError("a datagram has no connection to start TLS on: start_tls is for streams")

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> None:
        """Send a file's bytes as they are (the codec frames nothing), after what was sent
        before: ``file`` is a path or a binary file (left open); ``count`` bytes from
        ``offset`` (None: to the end). The file is read a ``write_buffer_high`` at a time as
        the peer takes it (backpressure, through TLS too); a ``@blocking`` ``fn(conn)`` on
        threads or iterative sends it with the kernel's ``sendfile`` (no copy), returning
        once it is sent.

        Raises:
            ClosedError: the connection is closed.
            FileNotFoundError / OSError: the file cannot be opened.
            RuntimeError: called from a pool thread (send the bytes with ``send`` there).
            TypeError: a datagram's sender (a file is a stream).
        """
        raise TypeError("a datagram carries one message: sendfile is for streams")

    def recv(self) -> Any:
        """The next message (``@blocking`` ``fn(conn)`` handlers only: threads, iterative, pool).

        Raises:
            ClosedError: the peer closed the connection (or the server is stopping).
            TypeError: this connection is not served by a blocking handler.
        """
        raise TypeError(
            "recv() is for a @socketkit.blocking fn(conn) handler, which owns its connection "
            "on a thread (engines threads, iterative, pool); a function or Protocol is given "
            "its messages instead"
        )

    def __iter__(self) -> Iterator[Any]:
        """Messages until the peer closes (blocking handlers only)."""
        while True:
            try:
                yield self.recv()
            except ClosedError:
                return

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<{type(self).__name__} {self.peer_url} {state}>"
