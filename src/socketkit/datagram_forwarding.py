"""A relay for datagrams (udp, unixgram): ``socat UDP-LISTEN:5353,fork UDP:host:53``
with every client in one process.

Why routes, not connections: a datagram listener has no connection per client,
so the relay keeps a *route* per client address, made by its first datagram: a
socket of its own, connected to the target, so the target's replies come back
to it and go on to that client alone (as socat's fork gives each client a
process and a socket). The route's socket is watched by the serving loop
(``add_reader``, on asyncio and uvloop alike: the handler is a plain def, run
on the loop), so a datagram costs one dictionary look-up and one send each way.

Bounded: at most ``max_routes`` clients at once (a newcomer past them is
dropped, counted and logged, sampled), and a route nothing crossed for
``idle_timeout`` seconds is closed by a sweep that runs only while routes
exist. The target's address is resolved once, when the relay is made, so no
look-up waits on the loop; a target that refuses (ICMP port unreachable) ends
that client's route, which its next datagram makes again.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import TYPE_CHECKING, Any

from .endpoints import Address, check_client_options, parse, sends_to_many
from .errors import translate_oserror
from .handlers import Protocol
from .sessionlog import SessionLog
from .sockopts import apply_to_client

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["DatagramForwarder"]

log = logging.getLogger("socketkit")

_RECV_SIZE = 65536
_BURST = 64  # replies read from one route at a time, so one busy target cannot starve the loop


class _Route:
    """One client's way to the target and back."""

    __slots__ = ("back", "far", "last", "log")

    def __init__(self, far: socket.socket, back: Connection, log: SessionLog | None) -> None:
        self.far = far
        self.back = back  # (answers the client from the listener's socket)
        self.last = time.monotonic()
        self.log = log


class DatagramForwarder(Protocol):
    """The relay's handler for a ``udp://`` or ``unixgram://`` listener: every client's
    datagrams go to ``target`` from a socket of the client's own, and what the target
    answers goes back to that client. Served on engine asyncio or uvloop (one process:
    with several workers a client's datagrams would leave by different routes).
    :meth:`close` closes the routes once the server has stopped.

    Raises (at construction): ValueError for a stream target, a multicast or broadcast
    target (its replies would have no one route), or an option only a listener has;
    ConnectError when the target's name does not resolve.
    """

    needs_event_loop = True
    one_process = True
    one_process_fix = "since a client's datagrams would otherwise leave by different routes"

    def __init__(
        self,
        target: Address,
        *,
        idle_timeout: float = 120.0,
        max_routes: int = 1024,
        log: SessionLog | None = None,
    ) -> None:
        self.target = parse(target, "udp")
        if self.target.is_stream:
            raise ValueError(
                f"a datagram relay's target is udp:// or unixgram://, not {self.target.url} "
                "(a stream has no datagram boundaries to keep)"
            )
        check_client_options(self.target)
        if sends_to_many(self.target):
            raise ValueError(
                f"a relay's target is one peer, not a group or broadcast address ({self.target.url})"
            )
        if not 0 < idle_timeout < float("inf") or max_routes < 1:
            raise ValueError("idle_timeout must be positive seconds and max_routes at least 1")
        self.idle_timeout = idle_timeout
        self.max_routes = max_routes
        self.log = log
        self._family, self._address = _resolve(self.target)
        self._routes: dict[Any, _Route] = {}
        self._sweep: asyncio.TimerHandle | None = None
        self._dropped_logged = 0.0
        #: clients given a route, datagrams dropped (past max_routes, or refused by the target)
        self.relayed = 0
        self.failed = 0
        #: bytes from clients to the target, and back
        self.bytes_up = 0
        self.bytes_down = 0

    @property
    def routes(self) -> int:
        """Clients with a route now."""
        return len(self._routes)

    def on_message(self, conn: Connection, message: bytes) -> None:
        key = (conn.listener, conn.peer)
        route = self._routes.get(key)
        if route is None:
            route = self._open(key, conn)
            if route is None:
                return
        route.last = time.monotonic()
        try:
            route.far.send(message)
        except OSError as exc:  # refused (an earlier datagram's ICMP), or a full buffer
            self._end(key, f"relay to {self.target.url} failed: {exc.strerror or exc}")
            self.failed += 1
            return
        self.bytes_up += len(message)
        if route.log is not None:
            route.log.sent(message)

    def _open(self, key: Any, conn: Connection) -> _Route | None:
        if len(self._routes) >= self.max_routes:
            self.failed += 1
            now = time.monotonic()
            if now - self._dropped_logged >= 1.0:  # (sampled: one line a second at most)
                self._dropped_logged = now
                log.warning(
                    "%s: datagram dropped: %d clients relayed at once (max_routes)",
                    conn.peer_url,
                    self.max_routes,
                )
            return None
        loop = asyncio.get_running_loop()
        far = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            far.setblocking(False)
            if self._family == socket.AF_UNIX:
                far.bind("")  # (an autobound address, so the target has somewhere to answer)
            else:
                apply_to_client(far, self.target.options)
            far.connect(self._address)
        except OSError as exc:
            far.close()
            self.failed += 1
            log.warning("%s: relay to %s failed: %s", conn.peer_url, self.target.url, exc.strerror or exc)
            return None
        route = _Route(far, conn, None if self.log is None else self.log.of(conn.peer_url))
        self._routes[key] = route
        self.relayed += 1
        loop.add_reader(far.fileno(), self._back, key, route)
        if self._sweep is None:
            self._sweep = loop.call_later(self.idle_timeout / 2, self._sweep_idle)
        return route

    def _back(self, key: Any, route: _Route) -> None:
        """The target's replies on this route, to its client."""
        for _ in range(_BURST):
            try:
                data = route.far.recv(_RECV_SIZE)
            except BlockingIOError:
                return
            except OSError as exc:  # ICMP port unreachable: the target is not listening
                self.failed += 1
                self._end(key, f"relay to {self.target.url} failed: {exc.strerror or exc}")
                return
            route.last = time.monotonic()
            route.back.send(data)
            self.bytes_down += len(data)
            if route.log is not None:
                route.log.received(data)

    def _end(self, key: Any, reason: str) -> None:
        route = self._routes.pop(key, None)
        if route is None:
            return
        log.info("%s: %s", route.back.peer_url, reason)
        asyncio.get_running_loop().remove_reader(route.far.fileno())
        route.far.close()

    def _sweep_idle(self) -> None:
        """Close the routes nothing crossed for idle_timeout; again while any is left."""
        cutoff = time.monotonic() - self.idle_timeout
        for key in [key for key, route in self._routes.items() if route.last <= cutoff]:
            route = self._routes.pop(key)
            asyncio.get_running_loop().remove_reader(route.far.fileno())
            route.far.close()
        self._sweep = None
        if self._routes:
            self._sweep = asyncio.get_running_loop().call_later(self.idle_timeout / 2, self._sweep_idle)

    def close(self) -> None:
        """Close every route (the server has stopped; on the loop that served it)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for route in self._routes.values():
            try:
                asyncio.get_running_loop().remove_reader(route.far.fileno())
            except RuntimeError:
                pass  # (the loop is gone: nothing watches the socket any more)
            route.far.close()
        self._routes.clear()


def _resolve(target: Any) -> tuple[socket.AddressFamily, Any]:
    """The target's family and address, looked up once."""
    if target.is_unix:
        return socket.AF_UNIX, target.path
    try:
        family, _, _, _, address = socket.getaddrinfo(
            target.host or "localhost", target.port, type=socket.SOCK_DGRAM
        )[0]
    except OSError as exc:
        raise translate_oserror(exc, target.url, "connect") from exc
    return family, address
