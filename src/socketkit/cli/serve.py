"""``socketkit serve``: run a built-in service or a user's handler."""

from __future__ import annotations

import logging
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler

from ..codecs import CODECS, codec_by_name
from ..engines import ENGINES
from ..limits import Limits
from ..loader import load_handler
from ..server import Server
from ..services import SERVICES, load_service
from .common import configure_logging, runtime_errors, usage_errors

DEFAULT_URL = "tcp://127.0.0.1:8888"

_SERVICES_HELP = "\n".join(f"  {name:8} {summary}" for name, (_, summary) in SERVICES.items())


@click.command(
    epilog=f"Built-in services:\n\n{_SERVICES_HELP}\n\nOr MODULE:ATTR: a handler function, Protocol or "
    "@blocking handler from your own code (the current directory is importable).",
)
@click.argument("service", metavar="SERVICE|MODULE:ATTR")
@click.option(
    "-l",
    "--listen",
    "urls",
    multiple=True,
    metavar="URL|HOST:PORT",
    help="Where to listen; repeat to serve several (tcp://, udp://, unix://; HOST:PORT is tcp, "
    f"/path is unix, * is every interface). Default {DEFAULT_URL}.",
)
@click.option(
    "--engine",
    type=click.Choice([*ENGINES, "auto"]),
    default="auto",
    show_default=True,
    help="Concurrency engine.",
)
@click.option(
    "--codec",
    type=click.Choice(list(CODECS)),
    default=None,
    help="Message framing (default: the service's own; raw for MODULE:ATTR).",
)
@click.option("--max-connections", type=click.IntRange(min=1), default=None, help="Connections at once.")
@click.option(
    "--max-connections-per-ip",
    type=click.IntRange(min=1),
    default=None,
    help="Connections at once from one IP address.",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds a silent connection stays open.",
)
@click.option("--max-message-size", type=click.IntRange(min=1), default=None, help="Largest message, bytes.")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds Ctrl-C/SIGTERM lets open requests finish.",
)
@click.option(
    "--stats", is_flag=True, help="Show a live panel of connections, requests/s, bytes/s and errors."
)
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def serve(
    service: str,
    urls: tuple[str, ...],
    engine: str,
    codec: str | None,
    max_connections: int | None,
    max_connections_per_ip: int | None,
    idle_timeout: float | None,
    max_message_size: int | None,
    grace: float | None,
    stats: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Serve SERVICE until Ctrl-C or SIGTERM, which drain open connections first."""
    handler: Any
    with usage_errors():
        if service in SERVICES:
            built_in = load_service(service)
            handler = built_in.handler
            if codec is not None and not built_in.codec_selectable:
                raise ValueError(f"{service} has a fixed wire format; leave out --codec")
            chosen = codec_by_name(codec) if codec is not None else built_in.codec
        else:
            handler = load_handler(service)
            chosen = codec_by_name(codec or "raw")
        overrides: dict[str, Any] = {
            "max_connections": max_connections,
            "max_connections_per_ip": max_connections_per_ip,
            "idle_timeout": idle_timeout,
            "max_message_size": max_message_size,
            "grace": grace,
        }
        limits = Limits(**{key: value for key, value in overrides.items() if value is not None})
        server = Server(list(urls) or [DEFAULT_URL], handler, codec=chosen, engine=engine, limits=limits)
        if service in SERVICES and not built_in.datagrams and not all(e.is_stream for e in server.endpoints):
            raise ValueError(f"{service} does not serve datagrams: use a tcp:// or unix:// URL")
    console = Console(stderr=True)
    log_handler: logging.Handler | None = None
    if stats and log_format == "text":
        log_handler = RichHandler(console=console, show_path=False)
    configure_logging(log_level, log_format, log_handler)
    panel = None
    if stats:
        from .stats_panel import StatsPanel  # noqa: PLC0415

        panel = StatsPanel(server, console)
    with runtime_errors():
        try:
            if panel is not None:
                panel.start()
            server.serve_forever()
        finally:
            if panel is not None:
                panel.stop()
    totals = server.stats
    click.echo(
        f"socketkit: stopped; served {totals.connections_total:,} connection(s), "
        f"{totals.messages_in:,} message(s) in, {totals.messages_out:,} out",
        err=True,
    )
