"""TlsLayer: TLS as a sans-IO byte layer, on ``ssl.SSLObject`` over two ``MemoryBIO``\\s.

Why this shape (as asyncio's sslproto and trio do it): the socket never meets
the ssl module, so the reactor never blocks in a handshake, no engine needs
its own TLS code, and the same layer serves the iterative, thread and reactor
engines. Wire bytes go into one BIO; the plaintext they complete comes out of
the SSLObject; what the SSLObject writes (handshake records, then application
records) comes out of the other BIO, which the session sends.

What a handler sends before the handshake is done is held and sent right after
it. A handshake failure (a plaintext client on a TLS port, a client that does
not trust the certificate, a client certificate that does not verify) is a
:class:`RemoteProtocolError` for that connection: logged with the reason and
counted, and no plaintext ever goes back to such a peer. Until the handshake is
done the connection counts as a message in progress, so ``read_timeout`` is the
handshake's deadline.

An error after the handshake (a record that fails its MAC, a renegotiation the
peer asks for and then aborts) is fatal for the TLS session: OpenSSL writes its
alert, and the session can carry nothing more. The layer remembers it, so the
error reply and close_notify that a closing connection would send are dropped
here, not raised from a write into a broken session.
"""

from __future__ import annotations

import ssl

from ..errors import RemoteProtocolError
from . import Layer

__all__ = ["MINIMUM_VERSION", "TlsLayer", "require_modern"]

#: The oldest protocol socketkit speaks, on both sides.
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
_READ_SIZE = 256 * 1024


def require_modern(context: ssl.SSLContext) -> ssl.SSLContext:
    """``context``, raised to TLS 1.2 at least if it allowed less (safe by default), and
    remembering the name each client asked for (SNI) unless it has a callback of its own."""
    minimum = context.minimum_version
    if minimum == ssl.TLSVersion.MINIMUM_SUPPORTED or minimum < MINIMUM_VERSION:
        context.minimum_version = MINIMUM_VERSION
    if context.sni_callback is None and context.protocol != ssl.PROTOCOL_TLS_CLIENT:
        context.sni_callback = _remember_sni
    return context


def _remember_sni(tls: ssl.SSLObject | ssl.SSLSocket, name: str | None, context: ssl.SSLContext) -> None:
    tls.socketkit_sni = name  # type: ignore[union-attr]  # read by TlsLayer.sni


class TlsLayer(Layer):
    """The server side of TLS for one connection. ``TlsLayer(context)``; with
    ``server_side=False`` the client's (:mod:`socketkit.aio`), which sends its hello once
    :meth:`opened`."""

    __slots__ = (
        "_closing",
        "_failed",
        "_held",
        "_incoming",
        "_outgoing",
        "_tls",
        "closed_by_peer",
        "handshake_done",
    )

    def __init__(
        self, context: ssl.SSLContext, server_side: bool = True, server_hostname: str | None = None
    ) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=server_side, server_hostname=server_hostname
        )
        self._held = bytearray()  # plaintext sent before the handshake was done
        self.handshake_done = False
        #: The peer sent close_notify: it will send nothing more.
        self.closed_by_peer = False
        self._closing = False
        self._failed = False  # a fatal TLS error: the session carries nothing more

    @property
    def in_progress(self) -> bool:
        return not self.handshake_done

    def opened(self, peer: object) -> None:
        """A client's side speaks first: its hello is ready for :meth:`take_output` now."""
        if not self._tls.server_side:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                pass

    @property
    def ended(self) -> bool:
        return self.closed_by_peer

    @property
    def version(self) -> str | None:
        """The protocol agreed on (``"TLSv1.3"``), once the handshake is done."""
        return self._tls.version() if self.handshake_done else None

    @property
    def sni(self) -> str | None:
        """The server name the client asked for (SNI), once the handshake is done."""
        return getattr(self._tls, "socketkit_sni", None) if self.handshake_done else None

    @property
    def alpn_protocol(self) -> str | None:
        return self._tls.selected_alpn_protocol() if self.handshake_done else None

    def peer_certificate(self) -> dict[str, object] | None:
        """The client's certificate, when the context asked for one and it verified."""
        return self._tls.getpeercert() if self.handshake_done else None  # type: ignore[return-value]

    def feed(self, data: bytes) -> bytes:
        self._incoming.write(data)
        if not self.handshake_done:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                return b""
            except ssl.SSLError as exc:
                self._failed = True
                raise RemoteProtocolError(f"TLS handshake failed: {_reason(exc)}") from None
            self.handshake_done = True
            if self._held:
                held, self._held = bytes(self._held), bytearray()
                self._tls.write(held)
        chunks = []
        while True:
            try:
                chunk = self._tls.read(_READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                chunk = b""
            except ssl.SSLError as exc:
                self._failed = True
                raise RemoteProtocolError(f"TLS error: {_reason(exc)}") from None
            if not chunk:  # close_notify: the peer sends nothing more
                self.closed_by_peer = True
                break
            chunks.append(chunk)
        return b"".join(chunks)

    def end(self) -> None:
        if not self.handshake_done:
            raise RemoteProtocolError("connection closed during the TLS handshake")

    def close(self) -> None:
        if self._closing or self._failed or not self.handshake_done:
            return  # no session to end: nothing is sent
        self._closing = True
        try:
            self._tls.unwrap()  # writes close_notify; the peer's own is not waited for
        except (ssl.SSLWantReadError, ssl.SSLError):
            pass

    def wrap(self, data: bytes) -> bytes:
        if self._closing or self._failed:
            return b""  # nothing goes out after close_notify or a fatal alert
        if not self.handshake_done:
            self._held += data
            return b""
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            self._failed = True
            raise RemoteProtocolError(f"TLS error: {_reason(exc)}") from None
        return self._outgoing.read()

    def take_output(self) -> bytes:
        return self._outgoing.read()


def _reason(exc: ssl.SSLError) -> str:
    reason = (exc.reason or exc.strerror or str(exc)).lower().replace("_", " ")
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        reason += f": {exc.verify_message}"  # (which check failed: the name, the issuer...)
    return reason
