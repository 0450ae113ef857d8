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

import ssl

from .layers.tls import require_modern

__all__ = ["client_context", "server_context"]


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
    except FileNotFoundError as exc:
        raise ValueError(f"TLS certificate or key not found: {exc.filename}") from None
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
