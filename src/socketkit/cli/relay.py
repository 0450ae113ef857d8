"""``socketkit relay LISTEN TARGET``: the port forwarder, as socat's ``TCP-LISTEN:P,fork TCP:H:P``.

Thin: the options become a :func:`socketkit.forwarding.relay_server`; the
relay itself is the library's.
"""

from __future__ import annotations

import contextlib
from typing import Any

import click

from ..datagram_forwarding import DatagramForwarder
from ..endpoints import parse
from ..forwarding import relay_server
from ..limits import Limits
from ..server import Server
from ..tls import client_context, server_context
from .common import (
    configure_logging,
    runtime_errors,
    session_log,
    session_log_options,
    target_url,
    tls_options,
    usage_errors,
)
from .serve import limit_option

__all__ = ["relay"]


@click.command()
@click.argument("listen", metavar="LISTEN")
@click.argument("target", metavar="TARGET")
@click.option(
    "--engine",
    type=click.Choice(["auto", "asyncio", "uvloop"]),
    default="auto",
    show_default=True,
    help="The loop that relays (auto: uvloop when installed).",
)
@click.option("--workers", default=None, metavar="N|auto", help="Worker processes sharing LISTEN.")
@click.option(
    "--proxy-protocol",
    type=click.Choice(["v1", "v2"]),
    help="Send TARGET a PROXY header with the client's address first (HAProxy's send-proxy).",
)
@click.option(
    "--connect-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds to reach TARGET (and finish its TLS handshake) for each client.",
)
@tls_options
@click.option(
    "--tls-cert", metavar="FILE", help="The certificate a tls:// LISTEN presents (TLS termination)."
)
@click.option("--tls-key", metavar="FILE", help="Its private key, if not in the certificate file.")
@limit_option("--max-connections", "Connections relayed at once; more wait in the listen backlog.")
@limit_option("--max-connection-rate", "New connections a second from one client address.")
@limit_option("--idle-timeout", "Seconds a relayed connection may carry nothing either way.")
@limit_option("--grace", "Seconds Ctrl-C/SIGTERM lets relayed connections finish.")
@click.option("--allow", multiple=True, metavar="CIDR", help="Only clients in this network may connect.")
@click.option("--deny", multiple=True, metavar="CIDR", help="Clients in this network may not connect.")
@session_log_options
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="How much to log.",
)
def relay(
    listen: str,
    target: str,
    engine: str,
    workers: str | None,
    proxy_protocol: str | None,
    connect_timeout: float,
    use_tls: bool,
    tls_ca: str | None,
    insecure: bool,
    tls_cert: str | None,
    tls_key: str | None,
    max_connections: int | None,
    max_connection_rate: float | None,
    idle_timeout: float | None,
    grace: float | None,
    allow: tuple[str, ...],
    deny: tuple[str, ...],
    output: str | None,
    hexdump: str | None,
    log_level: str,
) -> None:
    """Relay every connection on LISTEN to TARGET, both ways, until Ctrl-C or SIGTERM.

    \b
    LISTEN and TARGET: tcp://, tls://, unix:// URLs, HOST:PORT or a socket path;
    or both udp:// (unixgram://): each client's datagrams go to TARGET from a
    socket of its own, and TARGET's answers come back to it.
    tls:// on LISTEN terminates TLS (--tls-cert); on TARGET (or --tls) originates it.
    e.g. socketkit relay 127.0.0.1:8080 example.com:80 (the log's "serving" line says
    where it listens; the last line, what it relayed)
    """
    with contextlib.ExitStack() as stack:
        with usage_errors():
            listen_endpoint = parse(target_url(listen))
            target_endpoint = parse(target_url(target))
            if listen_endpoint.is_stream != target_endpoint.is_stream:
                kinds = "streams" if listen_endpoint.is_stream else "datagrams"
                raise ValueError(
                    f"LISTEN {listen_endpoint.url} takes {kinds}, TARGET {target_endpoint.url} does not: "
                    "relay stream to stream (tcp, tls, unix) or datagram to datagram (udp, unixgram)"
                )
            if tls_key and not tls_cert:
                raise ValueError("--tls-key needs --tls-cert")
            if listen_endpoint.is_tls and not tls_cert:
                raise ValueError(
                    f"listening on {listen_endpoint.url} needs a certificate: add --tls-cert FILE"
                )
            if tls_cert and not listen_endpoint.is_tls:
                raise ValueError(f"--tls-cert is for a tls:// LISTEN, not {listen_endpoint.url}")
            originate = use_tls or target_endpoint.is_tls
            if (tls_ca or insecure) and not originate:
                raise ValueError("--tls-ca and --insecure need --tls or a tls:// TARGET")
            if tls_ca and insecure:
                raise ValueError("--tls-ca and --insecure exclude each other")
            if not listen_endpoint.is_stream and (use_tls or proxy_protocol):
                raise ValueError("--tls and --proxy-protocol are for stream relays, not datagrams")
            overrides: dict[str, Any] = {
                "max_connections": max_connections,
                "max_connection_rate": max_connection_rate,
                "idle_timeout": idle_timeout,
                "grace": grace,
            }
            options: dict[str, Any] = {
                "engine": engine,
                "limits": Limits(**{key: value for key, value in overrides.items() if value is not None}),
                "allow": allow or None,
                "deny": deny,
                "workers": workers,
                "log": stack.enter_context(session_log(output, hexdump)),
            }
            if listen_endpoint.is_stream:
                options["connect_timeout"] = connect_timeout
                options["proxy_protocol"] = proxy_protocol
                if originate:
                    options["tls"] = client_context(tls_ca, insecure=insecure)
                if tls_cert:
                    options["listen_tls"] = server_context(tls_cert, tls_key)
            server = relay_server(listen_endpoint.url, target_endpoint.url, **options)
        configure_logging(log_level, "text")
        with runtime_errors():
            try:
                server.serve_forever()
            finally:
                if isinstance(server.handler.target, DatagramForwarder):
                    server.handler.target.close()
    click.echo(f"socketkit: stopped; {_summary(server, target_endpoint.url)}", err=True)


def _summary(server: Server, target: str) -> str:
    """What the relay moved, for its last line."""
    handler = server.handler.target
    if isinstance(handler, DatagramForwarder):
        dropped = f" ({handler.failed:,} datagram(s) dropped)" if handler.failed else ""
        return (
            f"relayed {handler.relayed:,} client(s){dropped}, "
            f"{handler.bytes_up:,} bytes up, {handler.bytes_down:,} down"
        )
    totals = server.stats
    failed = "" if server.workers else f" ({handler.failed:,} could not reach {target})"
    return (
        f"relayed {totals.connections_total:,} connection(s){failed}, "
        f"{totals.bytes_in:,} bytes up, {totals.bytes_out:,} down"
    )
