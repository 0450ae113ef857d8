"""``socketkit serve``: run a built-in service or a user's handler."""

from __future__ import annotations

import difflib
import logging
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.logging import RichHandler

from ..closing import log
from ..codecs import CODECS, WebSocket, codec_by_name
from ..endpoints import as_url
from ..engines import ENGINES
from ..layers.proxy import DEFAULT_TRUSTED
from ..limits import Limits
from ..loader import load_handler
from ..server import Server
from ..services import SERVICES, load_service
from ..tls import server_context
from .common import JsonFormatter, configure_logging, runtime_errors, usage_errors

DEFAULT_URL = "tcp://127.0.0.1:8888"
Command = TypeVar("Command", bound=Callable[..., Any])

_SERVICES_HELP = "\n".join(f"  {name:8} {summary}" for name, (_, summary) in SERVICES.items())
_DEFAULTS = Limits()


def limit_option(flag: str, meaning: str) -> Callable[[Command], Command]:
    """An option for one field of Limits, its type and default taken from there."""
    field = flag.lstrip("-").replace("-", "_")
    default = getattr(_DEFAULTS, field)
    kind = (
        click.FloatRange(min=0, min_open=field != "grace")
        if isinstance(default, float)
        else click.IntRange(min=0 if field == "write_buffer_low" else 1)
    )
    return click.option(flag, type=kind, default=None, help=f"{meaning}  [default: {default}]")


def _with_proxy(url: str, version: str) -> str:
    """``url`` (a URL or shorthand) with ``?proxy=version`` added."""
    full = as_url(url)
    return f"{full}{'&' if '?' in full else '?'}proxy={version}"


def _certificate_reloader(context: ssl.SSLContext, cert: str, key: str | None) -> Callable[[], None]:
    """What SIGHUP runs: load the certificate and key again, so new connections get them
    and open ones keep theirs (a renewed certificate without a restart); workers started
    after it inherit the context."""

    def reload() -> None:
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            log.error("SIGHUP: cannot reload the TLS certificate %s: %s; keeping the old one", cert, exc)
        else:
            log.info("SIGHUP: reloaded the TLS certificate %s", cert)

    return reload


@click.command(
    epilog=f"\b\nBuilt-in services:\n{_SERVICES_HELP}\n\nOr MODULE:ATTR: a handler function, Protocol or "
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
    type=click.Choice([*ENGINES, "prefork", "auto"]),
    default="auto",
    show_default=True,
    help="Concurrency engine.",
)
@click.option(
    "--workers",
    default=None,
    metavar="N|auto",
    help="Worker processes, each running --engine on the same sockets, under a master that "
    "restarts them (SIGHUP: replace them one by one, reloading MODULE:ATTR and certificates; "
    "SIGTTIN/SIGTTOU: one more/fewer). auto: one per usable core. Limits apply per worker.",
)
@click.option(
    "--backend",
    default=None,
    metavar="redis://HOST:PORT/DB?channel=NAME",
    help="broker only: relay lines through Redis pub/sub too, so the clients of every worker "
    "and every server on the channel see each other (needs socketkit[redis]).",
)
@click.option(
    "--worker-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds a worker may send no heartbeat (stuck in a handler) before it is replaced.",
)
@click.option(
    "--codec",
    type=click.Choice(list(CODECS)),
    default=None,
    help="Message framing (default: the service's own; raw for MODULE:ATTR).",
)
@click.option(
    "--deflate",
    is_flag=True,
    help="WebSocket (--codec ws, serve chat): compress messages (permessage-deflate, RFC 7692) "
    "with clients that offer it; none inflates past the message size limit.",
)
@click.option(
    "--ws-listen",
    "ws_urls",
    multiple=True,
    metavar="URL",
    help="Also take WebSocket clients at URL (repeatable), served by the same handler: "
    "serve broker -l tcp://... --ws-listen tcp://... puts line and WebSocket clients in one room.",
)
@click.option(
    "--ping-interval",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="WebSocket: ping a client silent this long; one that does not answer by the next "
    "interval is let go (keep it below --idle-timeout). serve chat: 30.",
)
@limit_option("--max-connections", "Connections served at once; more wait in the listen backlog.")
@limit_option("--max-connections-per-ip", "Connections at once from one IP address; more are closed.")
@limit_option("--max-connection-rate", "New connections a second from one IP address; more are closed.")
@limit_option("--idle-timeout", "Seconds a connection may stay silent between messages.")
@limit_option("--read-timeout", "Seconds a peer has to finish a message it started.")
@limit_option("--max-message-size", "Largest message in bytes (raises or lowers the codec's own limit).")
@limit_option("--write-buffer-high", "Unsent bytes to one peer above which its input is not read.")
@limit_option("--pool-threads", "Handler threads of the pool engine.")
@limit_option("--pool-queue", "Messages the pool engine holds for its threads; at it, reading pauses.")
@limit_option("--write-buffer-low", "Unsent bytes the output must drain to before reading resumes.")
@limit_option("--grace", "Seconds Ctrl-C/SIGTERM lets open requests finish.")
@limit_option("--stall-warning", "Seconds one handler call may hold a loop engine before the log says so.")
@click.option(
    "--metrics",
    metavar="URL|HOST:PORT",
    help="Serve Prometheus metrics at URL/metrics (needs pip install 'socketkit[metrics]').",
)
@click.option(
    "--proxy-protocol",
    type=click.Choice(["v1", "v2", "any"]),
    help="Every connection starts with a PROXY header from a load balancer (as ?proxy= on each URL).",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="CIDR",
    help="Who may send the PROXY header; repeat for several.  [default: 127.0.0.0/8, ::1/128]",
)
@click.option(
    "--allow",
    multiple=True,
    metavar="CIDR",
    help="Only peers in this address or network may connect (as ncat --allow); repeat for several.",
)
@click.option(
    "--deny",
    multiple=True,
    metavar="CIDR",
    help="Peers in this address or network may not connect (over --allow); repeat for several.",
)
@click.option(
    "--tls-cert", metavar="FILE", help="The certificate (PEM, chain first) tls:// endpoints present."
)
@click.option("--tls-key", metavar="FILE", help="Its private key, if not in the certificate file.")
@click.option("--tls-ca", metavar="FILE", help="CA certificates that client certificates must chain to.")
@click.option("--tls-client-auth", is_flag=True, help="Require a client certificate that --tls-ca verifies.")
@click.option(
    "--stats", is_flag=True, help="Show a live panel of connections, requests/s, bytes/s and errors."
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="How much to log: debug adds resets and detail, warning keeps only problems.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text, or as one JSON object a line.",
)
def serve(
    service: str,
    urls: tuple[str, ...],
    engine: str,
    workers: str | None,
    backend: str | None,
    worker_timeout: float,
    codec: str | None,
    deflate: bool,
    ws_urls: tuple[str, ...],
    ping_interval: float | None,
    max_connections: int | None,
    max_connections_per_ip: int | None,
    max_connection_rate: float | None,
    idle_timeout: float | None,
    read_timeout: float | None,
    max_message_size: int | None,
    write_buffer_high: int | None,
    pool_threads: int | None,
    pool_queue: int | None,
    write_buffer_low: int | None,
    grace: float | None,
    stall_warning: float | None,
    metrics: str | None,
    proxy_protocol: str | None,
    trusted_proxies: tuple[str, ...],
    allow: tuple[str, ...],
    deny: tuple[str, ...],
    tls_cert: str | None,
    tls_key: str | None,
    tls_ca: str | None,
    tls_client_auth: bool,
    stats: bool,
    log_level: str,
    log_format: str,
) -> None:
    """Serve SERVICE until Ctrl-C or SIGTERM, which drain open connections first."""
    handler: Any
    built_in = None
    with usage_errors():
        if service in SERVICES:
            built_in = load_service(service)
            handler = built_in.handler
            if codec is not None and not built_in.codec_selectable:
                raise ValueError(f"{service} has a fixed wire format; leave out --codec")
            chosen = codec_by_name(codec) if codec is not None else built_in.codec
        else:
            if ":" not in service:  # a service's name, misspelt: say which one was meant
                close = difflib.get_close_matches(service, SERVICES, n=1)
                hint = f"did you mean {close[0]}?" if close else f"the services: {', '.join(SERVICES)}"
                raise ValueError(
                    f"{service!r} is neither a built-in service nor module:attr (e.g. myapp:handle): {hint}"
                )
            load_handler(service)  # a mistake in it is a usage error, said here
            handler = service  # the server loads it by name: SIGHUP can load it again
            chosen = codec_by_name(codec or "raw")
        overrides: dict[str, Any] = {
            "max_connections": max_connections,
            "max_connections_per_ip": max_connections_per_ip,
            "max_connection_rate": max_connection_rate,
            "idle_timeout": idle_timeout,
            "read_timeout": read_timeout,
            "max_message_size": max_message_size,
            "write_buffer_high": write_buffer_high,
            "pool_threads": pool_threads,
            "pool_queue": pool_queue,
            "write_buffer_low": write_buffer_low,
            "grace": grace,
            "stall_warning": stall_warning,
        }
        limits = Limits(**{key: value for key, value in overrides.items() if value is not None})
        if max_message_size is not None:  # the option raises the codec's own limit too
            chosen = chosen.resized(max_message_size)
        if ws_urls:
            if isinstance(chosen, WebSocket):
                raise ValueError(
                    "--ws-listen is for a service framed otherwise: its codec is WebSocket, so use -l"
                )
            if workers is not None:
                raise ValueError(
                    "--ws-listen serves from one process: leave out --workers, or run a second "
                    "serve with --codec ws and the same --backend"
                )
            ws_codec = WebSocket().with_options(deflate=deflate or None, ping_interval=ping_interval)
        elif deflate or ping_interval is not None:
            if not isinstance(chosen, WebSocket):
                option = "--deflate" if deflate else "--ping-interval"
                raise ValueError(f"{option} is WebSocket's: add --codec ws (the codec here is {chosen.name})")
            chosen = chosen.with_options(deflate=deflate or None, ping_interval=ping_interval)
        process_init = None  # what each serving process runs first (the service says)
        if backend is not None:
            if built_in is None or built_in.backend is None:
                raise ValueError(
                    f"{service} takes no --backend (it is for the broker: socketkit serve broker --backend redis://...)"
                )
            process_init = built_in.backend(backend)
        if tls_cert is None and (tls_key or tls_ca or tls_client_auth):
            raise ValueError("--tls-key, --tls-ca and --tls-client-auth need --tls-cert")
        tls = server_context(tls_cert, tls_key, ca=tls_ca, client_auth=tls_client_auth) if tls_cert else None
        listen = list(urls) or [DEFAULT_URL]
        if proxy_protocol is not None:
            listen = [_with_proxy(url, proxy_protocol) for url in listen]
        elif trusted_proxies:
            raise ValueError("--trusted-proxy needs --proxy-protocol (or ?proxy= on a URL)")
        common: dict[str, Any] = {
            "engine": engine,
            "limits": limits,
            "tls": tls,
            "trusted_proxies": trusted_proxies or DEFAULT_TRUSTED,
            "allow": allow or None,
            "deny": deny,
        }
        ws_server = Server(list(ws_urls), handler, codec=ws_codec, **common) if ws_urls else None
        server = Server(
            listen,
            handler,
            codec=chosen,
            metrics=metrics,
            workers=workers,
            worker_timeout=worker_timeout,
            worker_init=process_init,  # each worker runs it once forked
            **common,
        )
    console = Console(stderr=True)
    log_handler: logging.Handler | None = None
    if stats and log_format == "text":
        # the same clock as the plain log lines (rich's default is a locale date and time)
        log_handler = RichHandler(console=console, show_path=False, log_time_format="%H:%M:%S")
    configure_logging(log_level, log_format, log_handler)
    if tls is not None and tls_cert is not None:
        server.reloaders.append(_certificate_reloader(tls, tls_cert, tls_key))
    if process_init is not None and server.workers is None:
        process_init()  # one process: now (with workers, each worker does)
    panel = None
    if stats:
        from .stats_panel import StatsPanel  # noqa: PLC0415

        panel = StatsPanel(server, console)
    with runtime_errors():
        try:
            if panel is not None:
                panel.start()
            if ws_server is not None:
                ws_server.start()
            server.serve_forever()
        finally:
            if ws_server is not None:
                ws_server.stop()  # (with the same grace, once the main listeners have drained)
            if panel is not None:
                panel.stop()
    both = [server.stats] + ([ws_server.stats] if ws_server is not None else [])
    line = (
        f"stopped; served {sum(s.connections_total for s in both):,} connection(s), "
        f"{sum(s.messages_in for s in both):,} message(s) in, {sum(s.messages_out for s in both):,} out"
    )
    if log_format == "json":  # the last line is a log line like the others
        record = logging.LogRecord("socketkit", logging.INFO, __file__, 0, line, None, None)
        click.echo(JsonFormatter().format(record), err=True)
    else:
        click.echo(f"{chr(10) if panel is not None else ''}socketkit: {line}", err=True)
