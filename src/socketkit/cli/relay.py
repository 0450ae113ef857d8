"""``socketkit relay LISTEN TARGET``: the port forwarder, as socat's ``TCP-LISTEN:P,fork TCP:H:P``.

Thin: the options become a :func:`socketkit.forwarding.relay_server`; the
relay itself is the library's.
"""

from __future__ import annotations

from typing import Any

import click

from ..codecs import Raw
from ..endpoints import parse
from ..forwarding import Forwarder
from ..limits import Limits
from ..server import Server
from ..tls import client_context, server_context
from .common import configure_logging, runtime_errors, target_url, tls_options, usage_errors
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
    log_level: str,
) -> None:
    """Relay every connection on LISTEN to TARGET, both ways, until Ctrl-C or SIGTERM.

    \b
    LISTEN and TARGET: tcp://, tls://, unix:// URLs, HOST:PORT or a socket path.
    tls:// on LISTEN terminates TLS (--tls-cert); on TARGET (or --tls) originates it.
    e.g. socketkit relay 127.0.0.1:8080 example.com:80 (the log's "serving" line says
    where it listens; the last line, what it relayed)
    """
    with usage_errors():
        listen_endpoint = parse(target_url(listen))
        target_endpoint = parse(target_url(target))
        if not listen_endpoint.is_stream:
            raise ValueError(
                f"relay listens on a stream (tcp://, tls://, unix://), not {listen_endpoint.url}"
            )
        if tls_key and not tls_cert:
            raise ValueError("--tls-key needs --tls-cert")
        if listen_endpoint.is_tls and not tls_cert:
            raise ValueError(f"listening on {listen_endpoint.url} needs a certificate: add --tls-cert FILE")
        if tls_cert and not listen_endpoint.is_tls:
            raise ValueError(f"--tls-cert is for a tls:// LISTEN, not {listen_endpoint.url}")
        originate = use_tls or target_endpoint.is_tls
        if (tls_ca or insecure) and not originate:
            raise ValueError("--tls-ca and --insecure need --tls or a tls:// TARGET")
        if tls_ca and insecure:
            raise ValueError("--tls-ca and --insecure exclude each other")
        forwarder = Forwarder(
            target_endpoint.url,
            tls=client_context(tls_ca, insecure=insecure) if originate else False,
            proxy_protocol=proxy_protocol,
            connect_timeout=connect_timeout,
        )
        overrides: dict[str, Any] = {
            "max_connections": max_connections,
            "max_connection_rate": max_connection_rate,
            "idle_timeout": idle_timeout,
            "grace": grace,
        }
        server = Server(
            listen_endpoint.url,
            forwarder,
            codec=Raw(),
            engine=engine,
            limits=Limits(**{key: value for key, value in overrides.items() if value is not None}),
            tls=server_context(tls_cert, tls_key) if tls_cert else None,
            allow=allow or None,
            deny=deny,
            workers=workers,
        )
    configure_logging(log_level, "text")
    with runtime_errors():
        server.serve_forever()
    totals = server.stats
    failed = "" if server.workers else f" ({forwarder.failed:,} could not reach {target_endpoint.url})"
    click.echo(
        f"socketkit: stopped; relayed {totals.connections_total:,} connection(s){failed}, "
        f"{totals.bytes_in:,} bytes up, {totals.bytes_out:,} down",
        err=True,
    )
