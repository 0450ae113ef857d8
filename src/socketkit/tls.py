"""TLS contexts with safe defaults, for servers (``Server(tls=...)``) and clients.

Why helpers: an ``ssl.SSLContext`` is easy to get subtly wrong (no
verification, old protocols). These make the two that socketkit's users need:
a server context from a certificate and key, optionally requiring client
certificates signed by a CA; and a client context that verifies the server
against the system's CAs or a given one. Both refuse anything older than TLS
1.2. Any context a user builds is accepted too, raised to TLS 1.2 if it allowed
less.
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any

from .layers.tls import require_modern

__all__ = ["TlsStream", "client_context", "server_context"]


def server_context(
    certfile: str, keyfile: str | None = None, *, ca: str | None = None, client_auth: bool = False
) -> ssl.SSLContext:
    """A server context presenting ``certfile`` (and ``keyfile``, if the key is apart).

    With ``client_auth`` a client must present a certificate that ``ca`` (a PEM file
    of CA certificates) verifies; without it, ``ca`` makes client certificates optional.

    Raises:
        ValueError: a file is missing or does not hold what it should (the message says which).
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except FileNotFoundError as exc:  # (load_cert_chain does not say which file it missed)
        missing = exc.filename or (certfile if not os.path.exists(certfile) else keyfile)
        raise ValueError(f"TLS certificate or key not found: {missing}") from None
    except ssl.SSLError as exc:
        raise ValueError(
            f"cannot use {certfile} (key {keyfile or 'in the same file'}): {exc.reason or exc}"
        ) from None
    if client_auth and ca is None:
        raise ValueError("requiring client certificates needs the CA that signs them (ca=...)")
    if ca is not None:
        _load_ca(context, ca)
        context.verify_mode = ssl.CERT_REQUIRED if client_auth else ssl.CERT_OPTIONAL
    return require_modern(context)


def client_context(ca: str | None = None, *, insecure: bool = False) -> ssl.SSLContext:
    """A client context that verifies the server's certificate and name.

    ``ca``: a PEM file of the CA certificates to trust instead of the system's.
    ``insecure``: verify nothing (for testing against a self-signed server only).
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _load_ca(context, ca)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return require_modern(context)


def _load_ca(context: ssl.SSLContext, ca: str) -> None:
    try:
        context.load_verify_locations(ca)
    except FileNotFoundError:
        raise ValueError(f"CA file not found: {ca}") from None
    except ssl.SSLError as exc:
        raise ValueError(f"cannot read CA certificates from {ca}: {exc.reason or exc}") from None


class TlsStream:
    """TLS over a connected blocking socket, with a half-close: the client side, or with
    ``server_side`` the server's (``socketkit listen`` over tls://).

    Why not ``ssl.SSLSocket``: its ``unwrap()`` sends close_notify and then insists on
    reading the peer's, failing (and losing it) when an answer comes first, which is
    exactly what a half-closing client waits for; and its ``shutdown(SHUT_WR)`` drops
    TLS altogether. On an ``SSLObject`` over memory BIOs close_notify is sent and the
    answer is still read. It has what socketkit's clients and relay use (``recv``,
    ``send``, ``sendall``, ``shutdown``, ``pending``, ``version``, ``close``); the
    socket's other methods (``getsockname``, ``settimeout``...) are the socket's own.

    Raises (from the constructor): ``ssl.SSLError`` for a failed handshake
    (``ssl.SSLCertVerificationError`` for a certificate that does not verify).
    """

    _RAW_IO = frozenset(
        {"recv_into", "recvfrom", "recvfrom_into", "recvmsg", "sendto", "sendmsg", "makefile", "sendfile"}
    )

    def __init__(
        self,
        sock: socket.socket,
        context: ssl.SSLContext,
        server_hostname: str | None,
        *,
        server_side: bool = False,
    ) -> None:
        self.sock = sock
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=None if server_side else server_hostname,
        )
        self._early = bytearray()  # plaintext read ahead of a half-close (see end_sending)
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                if not self._fill():
                    raise ssl.SSLEOFError(
                        f"the {'client' if server_side else 'server'} closed the connection "
                        "during the TLS handshake"
                    ) from None
        self._flush()

    def __getattr__(self, name: str) -> Any:
        if name in self._RAW_IO:
            raise AttributeError(f"TlsStream has no {name}: it would bypass TLS")
        return getattr(self.sock, name)

    def version(self) -> str | None:
        return self._tls.version()

    def getpeercert(self) -> dict[str, Any] | None:
        return self._tls.getpeercert()

    def pending(self) -> int:
        """Bytes received and not yet returned: read them without waiting for the socket.
        (Records OpenSSL holds whole, a close_notify among them, are not counted: a caller that
        polls the socket drains :meth:`take_buffered` instead.)"""
        return len(self._early) + self._tls.pending() + self._incoming.pending

    def send(self, data: bytes) -> int:
        self.sendall(data)
        return len(data)

    def sendall(self, data: bytes) -> None:
        self._tls.write(data)
        self._flush()

    def recv(self, size: int) -> bytes:
        """Plaintext; b"" once the peer ended the session (close_notify) or closed."""
        while True:
            data = self.take_buffered(size)
            if data is not None:
                return data
            if not self._fill():
                return b""

    def take_buffered(self, size: int) -> bytes | None:
        """Plaintext already received (b"" if the peer's close_notify is what came), without
        reading the socket; None when nothing is. What OpenSSL took from the socket and has
        not returned yet is here, though the socket polls empty: a caller that polls drains
        this first."""
        if self._early:
            data = bytes(self._early[:size])
            del self._early[:size]
            return data
        try:
            return self._tls.read(size)
        except ssl.SSLWantReadError:
            return None
        except ssl.SSLZeroReturnError:
            return b""

    def read_available(self, size: int) -> bytes | None:
        """For a caller that polled the socket readable: what is buffered, or else one read
        of the socket's worth (b"" at the peer's end; None when only TLS's own records came,
        such as a TLS 1.3 server's session tickets). Never blocks for more."""
        data = self.take_buffered(size)
        if data is not None:
            return data
        if not self._fill():
            return b""
        return self.take_buffered(size)

    def shutdown(self, how: int) -> None:
        """``SHUT_WR``: close_notify, and the answer can still be read; otherwise as the socket."""
        if how != socket.SHUT_WR:
            self.sock.shutdown(how)
            return
        self.end_sending()

    def end_sending(self) -> None:
        # OpenSSL's shutdown also tries to read the peer's close_notify, and fails on (and
        # drops) an answer already received: take what was received first.
        while True:
            try:
                chunk = self._tls.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not chunk:
                break
            self._early += chunk
        try:
            self._tls.unwrap()
        except ssl.SSLWantReadError:
            pass  # close_notify is written; the server's comes after its answer
        self._flush()

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self._incoming.write(data)
        return True

    def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            self.sock.sendall(data)
