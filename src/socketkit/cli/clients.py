"""The client commands: connect, listen, send, probe, info."""

from __future__ import annotations

import json
import shlex
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from .. import netinfo
from ..client import DatagramClient, start_tls
from ..client import connect as connect_client
from ..codecs import (
    CODECS,
    HttpRequest,
    HttpResponse,
    Json,
    Lines,
    Msgpack,
    Request,
    WebSocket,
    codec_by_name,
)
from ..endpoints import Endpoint, bind, check_client_options, connect_socket, format_url, parse
from ..errors import ProtocolError
from ..probe import parse_ports
from ..probe import probe as probe_ports
from ..relay import relay_datagrams, relay_stream, relay_websocket
from ..server import Server
from ..services.broker import Broker
from ..tls import TlsStream, client_context, server_context
from ..websocket_client import websocket_target
from .common import (
    Command,
    Failure,
    configure_logging,
    runtime_errors,
    session_log,
    session_log_options,
    target_url,
    tls_options,
    usage_errors,
)
from .throwaway import throwaway_context


def _wait_option(default: float | None, meaning: str) -> Callable[[Command], Command]:
    """-w/--wait SECONDS, which each command reads its own way."""
    return click.option(
        "-w",
        "--wait",
        "timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=default,
        show_default=default is not None,
        metavar="SECONDS",
        help=meaning,
    )


_WAIT = _wait_option(None, "Connect timeout, and how long to wait with nothing moving before giving up.")
_LISTEN_WAIT = _wait_option(
    None,
    "How long a client may send and receive nothing before it is let go (UDP: how long to "
    "wait for more datagrams after stdin ends; default 2).",
)
_UDP = click.option("-u", "--udp", is_flag=True, help="Use UDP (host:port and tcp:// become udp://).")
_CRLF = click.option("-C", "--crlf", is_flag=True, help="Send CRLF line endings.")
_SEND_ONLY = click.option("--send-only", is_flag=True, help="Only send stdin; ignore what comes back.")
_RECV_ONLY = click.option("--recv-only", is_flag=True, help="Only print what comes; do not read stdin.")


def _listener_tls(
    endpoint: Endpoint, use_tls: bool, cert: str | None, key: str | None, command: str | None
) -> ssl.SSLContext | None:
    """The server TLS context ``listen`` presents (tls://, --tls or --tls-cert), or None.
    Without a certificate it makes a throwaway one and says its fingerprint, as ncat does."""
    if cert is None and key:
        raise ValueError("--tls-key needs --tls-cert")
    if cert is None and not (use_tls or endpoint.is_tls):
        return None
    if not endpoint.is_stream:
        raise ValueError("TLS over datagrams is not available (the standard library has no DTLS)")
    if command:
        raise ValueError("--exec gives the command the raw socket, which cannot speak TLS")
    if cert is not None:
        return server_context(cert, key)
    context, fingerprint = throwaway_context()
    click.echo(
        "socketkit: TLS with a throwaway self-signed certificate (for localhost, 127.0.0.1 and "
        f"::1, valid a day); its SHA-256 fingerprint: {fingerprint}",
        err=True,
    )
    return context


def _client_tls(endpoint: Endpoint, use_tls: bool, ca: str | None, insecure: bool) -> ssl.SSLContext | None:
    """The client TLS context the options ask for, or None for plaintext."""
    if not (use_tls or endpoint.is_tls):
        if ca or insecure:
            raise ValueError("--tls-ca and --insecure need --tls or a tls:// URL")
        return None
    if not endpoint.is_stream:
        raise ValueError("TLS over datagrams is not available (the standard library has no DTLS)")
    if ca and insecure:
        raise ValueError("--tls-ca and --insecure exclude each other")
    return client_context(ca, insecure=insecure)


@click.command()
@click.argument("url", metavar="URL|HOST:PORT")
@_UDP
@_CRLF
@_SEND_ONLY
@_RECV_ONLY
@_WAIT
@session_log_options
@tls_options
@click.option(
    "--deflate",
    is_flag=True,
    help="ws:// only: offer permessage-deflate (RFC 7692): messages compressed if the server agrees.",
)
def connect(
    url: str,
    udp: bool,
    crlf: bool,
    send_only: bool,
    recv_only: bool,
    timeout: float | None,
    output: str | None,
    hexdump: str | None,
    use_tls: bool,
    tls_ca: str | None,
    insecure: bool,
    deflate: bool,
) -> None:
    """Like nc: stdin to the socket, the socket to stdout, until either side closes.

    A ws:// or wss:// URL connects as a WebSocket client (as websocat): each line of stdin
    is a text message, each message received a line of stdout.
    """
    if url.lower().startswith(("ws://", "wss://")):
        _connect_websocket(
            url, udp, timeout, output, hexdump, send_only, recv_only, use_tls, tls_ca, insecure, deflate
        )
        return
    with usage_errors():
        if deflate:
            raise ValueError("--deflate is for ws:// and wss:// URLs (WebSocket's compression)")
        endpoint = parse(target_url(url, udp))
        check_client_options(endpoint)  # (a listener's option here: say so now)
        if send_only and recv_only:
            raise ValueError("--send-only and --recv-only exclude each other")
        context = _client_tls(endpoint, use_tls, tls_ca, insecure)
    with runtime_errors(), session_log(output, hexdump) as log:
        sock = connect_socket(endpoint, timeout)
        with sock:
            if endpoint.is_stream:
                stream = sock if context is None else start_tls(sock, endpoint, context, None)
                relay_stream(
                    stream,
                    endpoint.url,
                    crlf=crlf,
                    send_only=send_only,
                    recv_only=recv_only,
                    idle_timeout=timeout,
                    log=log,
                )
            else:
                relay_datagrams(
                    sock,
                    endpoint.url,
                    crlf=crlf,
                    send_only=send_only,
                    recv_only=recv_only,
                    linger=timeout or 2.0,
                    log=log,
                )


def _connect_websocket(
    url: str,
    udp: bool,
    timeout: float | None,
    output: str | None,
    hexdump: str | None,
    send_only: bool,
    recv_only: bool,
    use_tls: bool,
    tls_ca: str | None,
    insecure: bool,
    deflate: bool,
) -> None:
    """``connect ws://...``: a WebSocket client between stdin and stdout."""
    with usage_errors():
        if udp or output or hexdump:
            raise ValueError("a ws:// URL takes no -u, -o or -x (a WebSocket is a stream of messages)")
        if send_only and recv_only:
            raise ValueError("--send-only and --recv-only exclude each other")
        context = _websocket_tls(url, use_tls, tls_ca, insecure)
    with runtime_errors():
        with connect_client(url, WebSocket(deflate=deflate), timeout=timeout, tls=context) as client:
            relay_websocket(
                client, sys.stdin.fileno(), sys.stdout.fileno(), send_only=send_only, recv_only=recv_only
            )


@click.command()
@click.argument("url", metavar="URL|HOST:PORT")
@click.option("-k", "--keep-open", is_flag=True, help="After a client leaves, wait for the next one.")
@click.option("--broker", is_flag=True, help="Relay every line from one client to all the others.")
@click.option(
    "--exec",
    "command",
    metavar="CMD",
    help="Run CMD for each client, its stdin and stdout attached to the connection. "
    "Only when given; CMD is split like a shell would but no shell runs it.",
)
@_UDP
@_CRLF
@_SEND_ONLY
@_RECV_ONLY
@_LISTEN_WAIT
@session_log_options
@click.option(
    "--tls",
    "use_tls",
    is_flag=True,
    help="Speak TLS, as ncat --ssl -l (tls:// does too); without --tls-cert, with a throwaway "
    "self-signed certificate whose fingerprint is printed.",
)
@click.option("--tls-cert", metavar="FILE", help="The certificate to present (PEM, chain first).")
@click.option("--tls-key", metavar="FILE", help="Its private key, if not in the certificate file.")
def listen(
    url: str,
    keep_open: bool,
    broker: bool,
    command: str | None,
    udp: bool,
    crlf: bool,
    send_only: bool,
    recv_only: bool,
    timeout: float | None,
    output: str | None,
    hexdump: str | None,
    use_tls: bool,
    tls_cert: str | None,
    tls_key: str | None,
) -> None:
    """Like nc -l: accept a connection and relay it to stdin and stdout."""
    with usage_errors():
        endpoint = parse(target_url(url, udp))
        argv = shlex.split(command) if command else []
        if command is not None and not argv:
            raise ValueError("--exec needs a command")
        if broker and (command or not endpoint.is_stream):
            raise ValueError("--broker relays lines between stream clients; it takes no --exec or -u")
        if (output or hexdump) and (broker or command):
            raise ValueError("-o and -x log what the relay moves: they take no --broker or --exec")
        context = _listener_tls(endpoint, use_tls, tls_cert, tls_key, command)
    if broker:
        configure_logging("info", "text")
        with runtime_errors():
            Server(endpoint.url, Broker(), codec=Lines(), tls=context).serve_forever()
        return
    with runtime_errors():
        listener = bind(endpoint)
    with runtime_errors(), listener.sock, session_log(output, hexdump) as log:
        click.echo(f"socketkit: listening on {listener.url}", err=True)
        if not endpoint.is_stream:
            relay_datagrams(
                listener.sock,
                listener.url,
                crlf=crlf,
                send_only=send_only,
                recv_only=recv_only,
                linger=timeout or 2.0,
                log=log,
            )
            return
        children: list[subprocess.Popen[bytes]] = []
        while True:
            conn, peer = listener.sock.accept()
            name = format_url(endpoint.scheme, peer) if isinstance(peer, tuple) else listener.url
            click.echo(f"socketkit: connection from {name}", err=True)
            with conn:
                stream: socket.socket | TlsStream = conn
                if context is not None:
                    try:
                        stream = TlsStream(conn, context, None, server_side=True)
                    except (ssl.SSLError, OSError) as exc:
                        reason = getattr(exc, "reason", None) or exc
                        if not keep_open:
                            raise Failure(f"TLS handshake with {name} failed: {reason}") from exc
                        click.echo(f"socketkit: TLS handshake with {name} failed: {reason}", err=True)
                        continue
                if argv:
                    children.append(subprocess.Popen(argv, stdin=conn.fileno(), stdout=conn.fileno()))
                else:
                    relay_stream(
                        stream,
                        name,
                        crlf=crlf,
                        send_only=send_only,
                        recv_only=recv_only,
                        idle_timeout=timeout,
                        log=log,
                    )
            children = [child for child in children if child.poll() is None]
            if not keep_open:
                for child in children:
                    child.wait()
                return


@click.command()
@click.argument("url", metavar="URL|HOST:PORT")
@click.argument("message")
@click.option(
    "--codec",
    type=click.Choice(list(CODECS)),
    default="lines",
    show_default=True,
    help="How the message and the reply are framed; json and msgpack take MESSAGE as JSON; "
    "http takes MESSAGE as the path to GET (- POSTs stdin to /) and prints the response.",
)
@_UDP
@_wait_option(10.0, "How long to wait for the reply.")
@tls_options
@click.option(
    "--deflate",
    is_flag=True,
    help="WebSocket only: offer permessage-deflate (the message compressed if the server agrees).",
)
def send(
    url: str,
    message: str,
    codec: str,
    udp: bool,
    timeout: float,
    use_tls: bool,
    tls_ca: str | None,
    insecure: bool,
    deflate: bool,
) -> None:
    """Send one MESSAGE (- reads it from stdin) and print the reply.

    A ws:// or wss:// URL (or --codec ws) sends MESSAGE as a WebSocket text message.
    """
    if url.lower().startswith(("ws://", "wss://")) or codec == "ws":
        _send_websocket(url, message, udp, timeout, use_tls, tls_ca, insecure, deflate)
        return
    with usage_errors():
        if deflate:
            raise ValueError("--deflate is WebSocket's: use a ws:// URL or --codec ws")
        endpoint = parse(target_url(url, udp))
        check_client_options(endpoint)  # (a listener's option here: say so now)
        context = _client_tls(endpoint, use_tls, tls_ca, insecure)
        chosen = codec_by_name(codec)
        raw = sys.stdin.buffer.read() if message == "-" else message.encode()
        structured = isinstance(chosen, (Json, Msgpack))
        payload: Any
        if isinstance(chosen, HttpRequest):
            payload = http_request(endpoint, message, raw)
            chosen = chosen.client_side()
        elif structured:
            try:
                payload = json.loads(raw)
            except ValueError as exc:
                raise ValueError(f"MESSAGE must be JSON with --codec {codec}: {exc}") from None
        else:
            payload = raw.rstrip(b"\r\n") if message == "-" and codec == "lines" else raw
        try:
            chosen.encode(payload)  # a message the codec cannot frame is the user's to fix
        except ProtocolError as exc:
            raise ValueError(f"MESSAGE cannot be sent with --codec {codec}: {exc}") from None
    with runtime_errors():
        if endpoint.is_stream:
            with connect_client(endpoint.url, codec=chosen, timeout=timeout, tls=context or False) as client:
                reply = client.request(payload)
        else:
            with DatagramClient(endpoint.url, codec=chosen, timeout=timeout) as datagrams:
                reply = datagrams.request(payload)
    if structured:
        click.echo(json.dumps(reply, indent=2, ensure_ascii=False, default=repr))
    elif isinstance(reply, HttpResponse):
        sys.stdout.buffer.write(http_response_text(reply))
        sys.stdout.flush()
    else:
        # A line's delimiter was taken off: put one back. Raw bytes go out as they came,
        # but a terminal gets a last newline, so the prompt does not follow the reply.
        ends_line = codec == "lines" or (sys.stdout.isatty() and not reply.endswith(b"\n"))
        sys.stdout.buffer.write(reply + (b"\n" if ends_line else b""))
        sys.stdout.flush()


def _websocket_tls(url: str, use_tls: bool, ca: str | None, insecure: bool) -> ssl.SSLContext | None:
    """The client TLS context a ws:// or wss:// URL and the options ask for (None: plaintext),
    the URL's host and port checked first (what ``connect`` and ``send`` say alike).

    Raises:
        ValueError: a bad URL, or TLS options that cannot apply.
    """
    websocket_target(url)  # (a bad host or port: said here, as a usage error)
    if ca and insecure:
        raise ValueError("--tls-ca and --insecure exclude each other")
    secure = use_tls or url.lower().startswith("wss://")
    if (ca or insecure) and not secure:
        raise ValueError("--tls-ca and --insecure are for wss:// URLs")
    return client_context(ca, insecure=insecure) if secure else None


def _send_websocket(
    url: str,
    message: str,
    udp: bool,
    timeout: float,
    use_tls: bool,
    tls_ca: str | None,
    insecure: bool,
    deflate: bool,
) -> None:
    """``send`` to a WebSocket server: one text message (bytes if it is not UTF-8), one reply."""
    with usage_errors():
        if udp:
            raise ValueError("a WebSocket is a stream: drop -u")
        if not url.lower().startswith(("ws://", "wss://")):  # --codec ws on a tcp:// or tls:// URL
            endpoint = parse(target_url(url))
            if endpoint.is_unix or not endpoint.is_stream:
                raise ValueError(f"--codec ws needs a tcp:// or tls:// URL (or ws://), not {endpoint.url}")
            url = ("wss://" if endpoint.is_tls else "ws://") + endpoint.url.split("://", 1)[1] + "/"
        context = _websocket_tls(url, use_tls, tls_ca, insecure)
        raw = sys.stdin.buffer.read().rstrip(b"\r\n") if message == "-" else message.encode()
        try:
            payload: str | bytes = raw.decode()
        except UnicodeDecodeError:
            payload = raw
    codec = WebSocket(deflate=deflate)
    with runtime_errors(), connect_client(url, codec, timeout=timeout, tls=context) as client:
        reply = client.request(payload)
    sys.stdout.buffer.write(reply.encode() + b"\n" if isinstance(reply, str) else reply)
    sys.stdout.flush()


def http_request(endpoint: Endpoint, message: str, body: bytes) -> Request:
    """What ``send --codec http MESSAGE`` sends: GET MESSAGE, or POST / with stdin."""
    if message != "-" and not message.startswith("/"):
        raise ValueError(
            f"with --codec http, MESSAGE is the path to GET (e.g. /) or - to POST stdin, not {message!r}"
        )
    host = "localhost" if endpoint.is_unix else endpoint.url.split("://", 1)[1]
    headers = [(b"host", host.encode()), (b"user-agent", b"socketkit"), (b"connection", b"close")]
    if message == "-":
        return Request(b"POST", b"/", b"HTTP/1.1", headers, body)
    return Request(b"GET", message.encode(), b"HTTP/1.1", headers)


def http_response_text(response: HttpResponse) -> bytes:
    """A response as curl -i prints it: status line, headers, empty line, body."""
    try:
        phrase = HTTPStatus(response.status).phrase
    except ValueError:
        phrase = ""
    lines = [f"HTTP/1.1 {response.status} {phrase}"] + [
        f"{name}: {value}" for name, value in response.headers
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


@click.command()
@click.argument("host")
@click.argument("ports")
@_wait_option(2.0, "How long to wait for each port.")
def probe(host: str, ports: str, timeout: float) -> None:
    """Like nc -z: which of PORTS (22,80,8000-8010) on HOST accept TCP connections.

    Exits 0 only if every port is open.
    """
    with usage_errors():
        port_list = parse_ports(ports)
        try:
            results = probe_ports(host, port_list, timeout)
        except socket.gaierror as exc:
            raise ValueError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    shown = f"[{host}]" if ":" in host else host  # an IPv6 address, written as in a URL
    for port, state in results.items():
        click.echo(f"{shown}:{port} {state}")
    if any(state != "open" for state in results.values()):
        raise click.exceptions.Exit(1)


@click.command()
@click.argument("host", required=False)
@click.option("--service", metavar="NAME|PORT", help="Look up a service by name or port (tcp and udp).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def info(host: str | None, service: str | None, as_json: bool) -> None:
    """The socket module's look-ups: names, addresses, reverse names, interfaces, services.

    Exits 1 when HOST cannot be looked up (the rest is still printed).
    """
    with usage_errors():
        services = netinfo.service_info(service) if service else None
    details = netinfo.host_info(host)
    if services is not None:
        details["services"] = services
    failed = "addresses_error" in details  # the look-up itself failed: exit 1, after printing
    if as_json:
        click.echo(json.dumps(details, indent=2))
        if failed:
            raise click.exceptions.Exit(1)
        return
    console = Console()
    console.print(f"[bold]hostname[/] {details['hostname']}   [bold]fqdn[/] {details['fqdn']}")
    table = Table(title=f"getaddrinfo({details['host']!r})")
    for column in ("family", "type", "protocol", "address", "reverse name"):
        table.add_column(column)
    for row in details["addresses"]:
        table.add_row(
            row["family"],
            row["type"],
            str(row["protocol"]),
            row["address"],
            details["reverse"].get(row["address"], ""),
        )
    console.print(table)
    if "addresses_error" in details:
        console.print(f"[red]getaddrinfo failed:[/] {details['addresses_error']}")
    interfaces = Table(title="interfaces (if_nameindex)")
    interfaces.add_column("index", justify="right")
    interfaces.add_column("name")
    for row in details["interfaces"]:
        interfaces.add_row(str(row["index"]), row["name"])
    console.print(interfaces)
    if services is not None:
        table = Table(title="services")
        for column in ("name", "port", "protocol"):
            table.add_column(column)
        for row in services:
            table.add_row(row["name"], str(row["port"]), row["protocol"])
        console.print(table)
    if failed:
        raise click.exceptions.Exit(1)


__all__ = ["Failure", "connect", "info", "listen", "probe", "send"]
