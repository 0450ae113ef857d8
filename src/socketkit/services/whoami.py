"""whoami: tells a client how the server sees it, as traefik/whoami does.

Why a service: behind a load balancer the question "which address does the
server see?" is the whole point of the PROXY protocol, and a test (and an
operator) needs an answer it can read. Over HTTP (the default) each request
gets a text/plain reply; with ``--codec lines`` (or raw) every message does.
The reply names the client address and port as the server sees them (after a
PROXY header), the local address, the PROXY header's version and authority
(the SNI the client gave the balancer), and the TLS version and SNI, if any.
"""

from __future__ import annotations

from typing import Any

from ..codecs import HttpRequest, HttpResponse, Request
from ..connection import Connection
from ..endpoints import format_url
from ..handlers import Protocol
from ..layers.proxy import PP2_TYPE_AUTHORITY, ProxyProtocolLayer
from ..layers.tls import TlsLayer
from . import Service


def describe(conn: Connection) -> str:
    """The lines whoami answers with, one fact a line."""
    local = format_url("tcp", conn.local) if isinstance(conn.local, tuple) else str(conn.local)
    lines = [f"client: {conn.peer_url}", f"local: {local}"]
    layer = getattr(conn, "layer", None)
    proxy = layer(ProxyProtocolLayer) if layer else None
    if proxy is not None:
        lines.append(f"proxy: {proxy.version} {proxy.command}")
        authority = proxy.tlvs.get(PP2_TYPE_AUTHORITY)
        if authority:
            lines.append(f"authority: {authority.decode('utf-8', 'replace')}")
    tls = layer(TlsLayer) if layer else None
    if tls is not None:
        lines.append(f"tls: {tls.version}")
        if tls.sni:
            lines.append(f"sni: {tls.sni}")
    return "\n".join(lines) + "\n"


class WhoAmI(Protocol):
    """Answers each request with :func:`describe` (HTTP, or a line with --codec lines)."""

    serves_datagrams = False  # what it tells is about a connection

    def on_message(self, conn: Connection, message: Any) -> None:
        if not isinstance(message, Request):
            conn.send(describe(conn).rstrip("\n").replace("\n", "; ").encode())
            return
        response = HttpResponse(200, describe(conn).encode(), [("Content-Type", "text/plain")])
        response.close = not message.keep_alive  # (Connection: close, then it closes)
        conn.send(response)
        if response.close:
            conn.close()


def service() -> Service:
    return Service("whoami", "how the server sees the client", WhoAmI(), codec=HttpRequest())
