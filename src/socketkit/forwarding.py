"""A relay (port forwarder) for tcp, unix and TLS: ``socat TCP-LISTEN:8080,fork TCP:host:80``
with many connections in one process.

Why a handler on socketkit's own server, not a loop of its own: each client is a
session on engine uvloop (or asyncio), and its far side is :mod:`socketkit.aio`'s
client on the same loop, so a relay gets what every server has: limits and
timeouts, allow/deny lists, a PROXY header from a balancer, TLS termination
(a ``tls://`` listener), stats, Prometheus metrics, prefork workers and a
graceful stop. What is the relay's own:

- **Backpressure both ways.** What the client sends (a read's worth, the raw
  codec's message) is awaited into the far side before the next is read (one
  message in hand per connection); what the far side sends waits while the
  client's output is above ``write_buffer_high``, until it drains (``on_drain``).
- **Half-close goes through.** The client's end (``echo hi | nc``) shuts the far
  side's write (``on_input_end`` keeps the client's connection open), and the far
  side's answer still comes back; the far side's end closes the client's
  connection once its output is out. A stopping server ends input the same way,
  so answers in flight come back within the grace period.
- **Origination.** ``tls://`` targets (or ``tls=``) verify the far side as the
  client does; ``proxy_protocol="v1"|"v2"`` sends the client's address first
  (before TLS), for an HAProxy or nginx behind the relay.
- **Counted.** :class:`Forwarder` counts connections relayed, those whose far side
  could not be reached (logged with the client and the reason), and bytes each
  way; with a :class:`~socketkit.sessionlog.SessionLog` it writes what crossed,
  each chunk headed by its client (``socketkit relay -x``).

A datagram listener relays through
:class:`~socketkit.datagram_forwarding.DatagramForwarder` instead (a route per
client, not a connection); :func:`relay_server` picks the one the listener needs.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import typing
from typing import Any

from . import aio
from .codecs import Raw
from .datagram_forwarding import DatagramForwarder
from .endpoints import Address, check_client_options, parse
from .errors import ClosedError, SocketkitError
from .eyeballs import DEFAULT_DELAY
from .handlers import Protocol
from .layers.proxy import proxy_header
from .limits import Limits
from .server import Server
from .sessionlog import SessionLog
from .tls import client_context

if typing.TYPE_CHECKING:
    from .connection import Connection

__all__ = ["Forwarder", "relay_server"]

log = logging.getLogger("socketkit")

_FAR = "socketkit.far"  # conn.state keys: the far side's client, its reader task...
_BACK = "socketkit.back"
_ROOM = "socketkit.room"
_SHUT = "socketkit.shut"
_LOG = "socketkit.log"


class Forwarder(Protocol):
    """The relay's handler: every client connection is relayed to ``target``.

    ``tls``: originate TLS to the target (True: verify it against the system's CAs, or an
    ``ssl.SSLContext``; on by default for a ``tls://`` target); ``server_hostname``: the
    name checked (default the target's host). ``proxy_protocol``: "v1" or "v2" to send a
    PROXY header naming the client first. ``connect_timeout`` bounds reaching the target
    (and its TLS handshake). ``log``: where to write what crossed, each way.

    Raises (at construction): ValueError for a datagram target, an option only a listener
    has, or a PROXY version other than v1 and v2.
    """

    serves_datagrams = False

    def __init__(
        self,
        target: Address,
        *,
        tls: bool | ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        proxy_protocol: str | None = None,
        connect_timeout: float = 10.0,
        happy_eyeballs_delay: float = DEFAULT_DELAY,
        log: SessionLog | None = None,
    ) -> None:
        self.target = parse(target)
        if not self.target.is_stream:
            raise ValueError(
                f"a stream relay's target is tcp://, tls:// or unix://, not {self.target.url} "
                "(a stream has no datagram boundaries to keep)"
            )
        check_client_options(self.target)
        if proxy_protocol not in (None, "v1", "v2"):
            raise ValueError(f"proxy_protocol must be v1 or v2, not {proxy_protocol!r}")
        originate = self.target.is_tls if tls is None else tls is not False
        self.tls: ssl.SSLContext | None = None
        if originate:
            self.tls = tls if isinstance(tls, ssl.SSLContext) else client_context()
        self.server_hostname = server_hostname or self.target.host or "localhost"
        self.proxy_protocol = proxy_protocol
        self.connect_timeout = connect_timeout
        self.happy_eyeballs_delay = happy_eyeballs_delay
        self.log = log
        #: connections relayed (their far side reached), and those whose far side was not
        self.relayed = 0
        self.failed = 0
        #: bytes from clients to the target, and back
        self.bytes_up = 0
        self.bytes_down = 0

    async def on_connect(self, conn: Connection) -> None:  # type: ignore[override]  # (awaited)
        try:
            far = await self._reach(conn)
        except SocketkitError as exc:
            self.failed += 1
            log.warning("%s: relay to %s failed: %s", conn.peer_url, self.target.url, exc)
            conn.close()
            return
        self.relayed += 1
        room = asyncio.Event()
        room.set()
        conn.state[_FAR] = far
        conn.state[_ROOM] = room
        if self.log is not None:
            conn.state[_LOG] = self.log.of(conn.peer_url)
        conn.state[_BACK] = asyncio.ensure_future(self._back(conn, far, room))

    async def _reach(self, conn: Connection) -> aio.AsyncClient:
        """The far side, connected, its PROXY header sent and its TLS on."""
        far = await aio.connect(
            self.target.url,
            timeout=self.connect_timeout,
            tls=False,
            happy_eyeballs_delay=self.happy_eyeballs_delay,
        )
        try:
            if self.proxy_protocol is not None:
                await far.send(proxy_header(self.proxy_protocol, conn.peer, conn.local))
            if self.tls is not None:
                await far.start_tls(self.tls, server_hostname=self.server_hostname)
        except BaseException:
            far.close()
            raise
        far.timeout = None  # (the client's connection has the server's idle_timeout)
        return far

    async def on_message(self, conn: Connection, message: bytes) -> None:  # type: ignore[override]  # (awaited)
        far: aio.AsyncClient | None = conn.state.get(_FAR)
        if far is None or far.closed:
            return
        try:
            await far.send(message)  # (waits while the far side does not read)
        except SocketkitError as exc:
            log.info("%s: relay to %s ended: %s", conn.peer_url, self.target.url, exc)
            conn.close()
            return
        self.bytes_up += len(message)
        if self.log is not None:
            conn.state[_LOG].sent(message)

    async def _back(self, conn: Connection, far: aio.AsyncClient, room: asyncio.Event) -> None:
        """What the far side sends, to the client, until the far side ends."""
        high = typing.cast(Any, conn).limits.write_buffer_high
        session_log: SessionLog | None = conn.state.get(_LOG)
        try:
            while True:
                data = await far.recv()
                if session_log is not None:
                    session_log.received(data)
                for start in range(0, len(data), high):  # (sent a high-water mark at a time)
                    if conn.write_buffer_size > high:
                        room.clear()
                        await room.wait()  # (set by on_drain)
                    if conn.closed:
                        return
                    chunk = data[start : start + high]
                    conn.send(chunk)
                    self.bytes_down += len(chunk)
        except SocketkitError as exc:  # ClosedError: the far side ended: so does the relay
            if not isinstance(exc, ClosedError):
                log.info("%s: relay from %s ended: %s", conn.peer_url, self.target.url, exc)
        conn.close()

    def on_drain(self, conn: Connection) -> None:
        room: asyncio.Event | None = conn.state.get(_ROOM)
        if room is not None:
            room.set()

    def on_input_end(self, conn: Connection) -> bool:
        far: aio.AsyncClient | None = conn.state.get(_FAR)
        if far is None or far.closed:
            return False
        conn.state[_SHUT] = asyncio.ensure_future(_shut_write(far))
        return True  # the far side's answer still comes back; its end closes this one

    async def on_close(self, conn: Connection, error: BaseException | None) -> None:  # type: ignore[override]  # (awaited)
        back: asyncio.Future[None] | None = conn.state.get(_BACK)
        if back is not None and not back.done():
            back.cancel()
        far: aio.AsyncClient | None = conn.state.get(_FAR)
        if far is not None:
            await far.aclose()


async def _shut_write(far: aio.AsyncClient) -> None:
    try:
        await far.shutdown_write()
    except SocketkitError:
        pass  # (broken meanwhile: its reader ends the relay)


def relay_server(listen: Address | list[Address], target: Address, **options: Any) -> Server:
    """A :class:`~socketkit.Server` that relays every connection on ``listen`` to ``target``
    (not started: ``.serve_forever()`` or ``.start()``). ``options`` are
    :class:`Forwarder`'s (``tls``, ``server_hostname``, ``proxy_protocol``,
    ``connect_timeout``, ``log``) and :class:`~socketkit.Server`'s (``engine``, ``limits``,
    ``tls`` for a ``tls://`` listener as ``listen_tls``, ``allow``, ``deny``, ``metrics``,
    ``workers``...). The server's handler is the :class:`Forwarder`, for its counts.

    A ``udp://`` or ``unixgram://`` listener relays datagrams to a datagram target through
    a :class:`~socketkit.datagram_forwarding.DatagramForwarder` (``log`` its only option of
    the above; a route per client, at most ``limits.max_connections``, closed after
    ``limits.idle_timeout``); call its ``close()`` once the server has stopped.

    Raises:
        ValueError: stream and datagram listeners together, or a target of the other kind.
    """
    endpoints = [parse(url) for url in (listen if isinstance(listen, list) else [listen])]
    datagrams = [endpoint.url for endpoint in endpoints if not endpoint.is_stream]
    if datagrams and len(datagrams) < len(endpoints):
        raise ValueError(
            f"a relay listens on streams or on datagrams, not both ({', '.join(datagrams)} "
            "are datagram listeners): run one relay for each"
        )
    handler: Protocol
    if datagrams:
        if parse(target, "udp").is_stream:
            raise ValueError(
                f"a datagram relay's target is udp:// or unixgram://, not {parse(target).url} "
                "(a stream has no datagram boundaries to keep)"
            )
        stream_only = [
            key for key in ("tls", "server_hostname", "proxy_protocol", "listen_tls") if key in options
        ]
        if stream_only:
            raise ValueError(f"{', '.join(stream_only)}: for a stream relay, not datagrams ({datagrams[0]})")
        limits: Limits = options.get("limits") or Limits()
        handler = DatagramForwarder(
            target,
            idle_timeout=limits.idle_timeout,
            max_routes=limits.max_connections,
            log=options.pop("log", None),
        )
        for key in ("connect_timeout", "happy_eyeballs_delay"):
            options.pop(key, None)  # (nothing to connect: a datagram route is ready at once)
    else:
        forwarder_keys = (
            "tls",
            "server_hostname",
            "proxy_protocol",
            "connect_timeout",
            "happy_eyeballs_delay",
            "log",
        )
        handler = Forwarder(target, **{key: options.pop(key) for key in forwarder_keys if key in options})
        if "listen_tls" in options:
            options["tls"] = options.pop("listen_tls")
    return Server(listen, handler, codec=Raw(), **options)
