"""Endpoint URLs: parse them once, bind and connect from the parsed form.

Why URLs: one string names a transport, an address and its options, so a
server can listen on ``tcp://[::1]:0``, ``udp://127.0.0.1:9999`` and
``unix:///run/app.sock`` at once, and the CLI needs no per-family flags.

Supported schemes::

    tcp://host:port      tcp://[::1]:port      tcp://*:port  (all interfaces, dual-stack)
    tls://host:port      (TCP with TLS: Server(tls=context), connect(tls=...))
    udp://host:port      (same host forms)
    unix:///abs/path     unix://@abstract-name  (Linux abstract namespace)
    unixgram:///abs/path unixgram://@name       (unix datagrams)

Query options for stream listeners: ``?backlog=N`` (default 1024), and
``?proxy=v1|v2|any``: each connection starts with a PROXY protocol header from
a trusted load balancer, naming the real client (see ``layers.proxy``). Socket
options (``keepalive``, ``rcvbuf``, ``reuseport``, ``interface``, ``mode``,
...) are in :mod:`socketkit.sockopts`.

Everywhere an endpoint is taken (``Server``, ``connect``, ``DatagramClient``,
the CLI) the same shorthands work: ``host:port`` and ``[::1]:port`` (tcp, or
udp for datagram clients), ``/abs/path`` and ``@name`` (unix), and the
``(host, port)`` tuple that ``socket.bind`` takes, where ``""`` means every
interface as it does there. A URL with no host (``tcp://:8888``) is refused:
write ``127.0.0.1`` for this machine or ``*`` for every interface.

Bad URLs raise :class:`ValueError` naming the problem. Listeners get
SO_REUSEADDR (stream) and a real backlog. A stale unix socket file is replaced
only when nothing listens on it; a path that is not a socket is never removed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .errors import BindError, ConnectError, translate_oserror
from .eyeballs import DEFAULT_DELAY, connect_first
from .sockopts import (
    LISTENER_ONLY,
    OPTIONS,
    apply_after_bind,
    apply_before_bind,
    apply_to_client,
    join_group,
    parse_option,
)

__all__ = [
    "DEFAULT_BACKLOG",
    "Address",
    "Endpoint",
    "Listener",
    "adopt",
    "as_url",
    "bind",
    "check_client_options",
    "check_timeout",
    "connect_socket",
    "describe_socket",
    "format_url",
    "is_address",
    "is_group",
    "parse",
    "sends_to_many",
]

DEFAULT_BACKLOG = 1024

_SCHEMES: dict[str, tuple[socket.AddressFamily | None, socket.SocketKind]] = {
    "tcp": (None, socket.SOCK_STREAM),
    "tls": (None, socket.SOCK_STREAM),  # TCP with TLS on top
    "udp": (None, socket.SOCK_DGRAM),
    "unix": (socket.AF_UNIX, socket.SOCK_STREAM),
    "unixgram": (socket.AF_UNIX, socket.SOCK_DGRAM),
}
_OPTIONS = {"backlog", "proxy", *OPTIONS}
_PROXY_VERSIONS = {"v1": ("v1",), "v2": ("v2",), "any": ("v1", "v2")}


@dataclass(frozen=True)
class Endpoint:
    """A parsed endpoint URL. ``host`` is ``""`` for "all interfaces"."""

    scheme: str
    type: socket.SocketKind
    host: str = ""
    port: int = 0
    path: str = ""  # unix: filesystem path, or "\0name" for the abstract namespace
    backlog: int = DEFAULT_BACKLOG
    #: PROXY protocol versions expected first on each connection (``?proxy=v1|v2|any``)
    proxy: tuple[str, ...] | None = None
    #: socket options from the query (see :mod:`socketkit.sockopts`), as (name, value) pairs
    sockopts: tuple[tuple[str, Any], ...] = ()
    #: an adopted socket that is one connection already (a ``socketpair()`` end, or what
    #: systemd passes with ``Accept=yes``), served as such, not a listener
    connected: bool = False

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.sockopts)

    @property
    def is_unix(self) -> bool:
        return self.scheme in ("unix", "unixgram")

    @property
    def is_stream(self) -> bool:
        return self.type == socket.SOCK_STREAM

    @property
    def is_tls(self) -> bool:
        return self.scheme == "tls"

    @property
    def url(self) -> str:
        if self.is_unix:
            return f"{self.scheme}://{_format_unix_path(self.path) or '(unnamed)'}"
        host = self.host or "*"
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}"

    def __str__(self) -> str:
        return self.url


#: What names an endpoint: a URL, a shorthand (``host:port``, ``/path``), or a socket address tuple.
Address = str | tuple[Any, ...]


def is_address(value: object) -> bool:
    """Whether ``value`` names one endpoint (as opposed to a list of them)."""
    return isinstance(value, str) or (
        isinstance(value, tuple) and len(value) in (2, 4) and isinstance(value[1], int)
    )


def as_url(address: Address, default_scheme: str = "tcp") -> str:
    """The URL for a URL, a shorthand or a ``(host, port)`` tuple (see the module notes).

    ``default_scheme`` ("tcp" or "udp") is used where the shorthand names none; a
    path becomes the matching unix scheme.
    """
    if isinstance(address, tuple):
        if not is_address(address) or not isinstance(address[0], str):
            raise ValueError(
                f"{address!r} is not a socket address: write (host, port), e.g. ('127.0.0.1', 8888)"
            )
        host, port = address[0] or "*", address[1]
        return f"{default_scheme}://{f'[{host}]' if ':' in host else host}:{port}"
    if not isinstance(address, str):
        raise TypeError(f"endpoint must be a URL or a (host, port) tuple, not {type(address).__name__}")
    if "://" in address:
        return address
    if address.startswith(("/", "@")):
        return f"{'unix' if default_scheme == 'tcp' else 'unixgram'}://{address}"
    return f"{default_scheme}://{address}"


def parse(url: Address, default_scheme: str = "tcp") -> Endpoint:
    """Parse an endpoint URL, or one of the shorthands in the module notes.

    Raises:
        ValueError: the URL has an unknown scheme, no host, no port, a port outside
            0-65535, a relative unix path, or an unknown option.
    """
    original = url
    if isinstance(url, str):
        _refuse_near_misses(url, default_scheme)
    url = as_url(url, default_scheme)
    if "://" not in url or not url.split("://", 1)[0]:
        raise ValueError(
            f"{original!r} is not an endpoint: write scheme://address, e.g. tcp://127.0.0.1:8888, "
            f"or host:port (schemes: {', '.join(_SCHEMES)})"
        )
    scheme_part = url.split("://", 1)[0].lower()
    if scheme_part not in _SCHEMES:
        raise ValueError(f"unknown scheme {scheme_part!r} in {url!r}: use one of {', '.join(_SCHEMES)}")
    try:
        parts = urlsplit(url)
    except ValueError:  # "Invalid IPv6 URL": a bracket not closed
        rest = url.split("://", 1)[1]
        inside = rest.lstrip("[").split("]")[0].split("/")[0].split("?")[0]
        address, _, number = inside.rpartition(":")
        example = (
            f"{scheme_part}://[{address}]:{number}" if number.isdigit() else f"{scheme_part}://[::1]:8888"
        )
        raise ValueError(f"unclosed '[' in {url!r}: write {example}") from None
    backlog, proxy, sockopts = _parse_options(url, parts.query, scheme_part)
    _family, kind = _SCHEMES[scheme_part]
    if proxy is not None and kind != socket.SOCK_STREAM:
        raise ValueError(f"?proxy= is for stream endpoints (tcp://, tls://, unix://), not {url!r}")
    if scheme_part in ("unix", "unixgram"):
        return Endpoint(
            scheme_part,
            kind,
            path=_parse_unix_path(url, parts.netloc, parts.path),
            backlog=backlog,
            proxy=proxy,
            sockopts=sockopts,
        )
    if parts.path not in ("", "/"):
        raise ValueError(f"unexpected path {parts.path!r} in {url!r}: write {scheme_part}://host:port")
    netloc = parts.netloc
    if "@" in netloc:
        raise ValueError(f"user info is not allowed in {url!r}: write {scheme_part}://host:port")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in {url!r}: the port must be a number from 0 to 65535") from None
    if port is None:
        raise ValueError(
            f"no port in {original!r}: write {scheme_part}://host:port (port 0 picks a free one)"
        )
    host = parts.hostname or ""
    if netloc.startswith("[") and "]" in netloc:
        host = netloc[1 : netloc.index("]")]
    if not host:
        raise ValueError(
            f"no host in {original!r}: write {scheme_part}://127.0.0.1:{port} for this machine only, "
            f"or {scheme_part}://*:{port} for every interface"
        )
    if host == "*":
        host = ""
    return Endpoint(scheme_part, kind, host=host, port=port, backlog=backlog, proxy=proxy, sockopts=sockopts)


def _refuse_near_misses(url: str, default_scheme: str) -> None:
    """A port without a host, or a scheme without its ``//``: say what was meant."""
    if url.isdigit():
        raise ValueError(
            f"{url!r} is a port without a host: did you mean {default_scheme}://127.0.0.1:{url} "
            f"(this machine only) or {default_scheme}://*:{url} (every interface)?"
        )
    scheme, colon, rest = url.partition(":")
    if (
        colon
        and "://" not in url
        and scheme.lower() in _SCHEMES
        and scheme.lower() not in ("unix", "unixgram")
        and rest[:1] != "/" * 2
    ):
        raise ValueError(f"{url!r} lacks the // after {scheme}: did you mean {scheme}://{rest.lstrip('/')}?")


def _parse_options(
    url: str, query: str, scheme: str
) -> tuple[int, tuple[str, ...] | None, tuple[tuple[str, Any], ...]]:
    backlog = DEFAULT_BACKLOG
    proxy = None
    sockopts: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in _OPTIONS:
            raise ValueError(f"unknown option {key!r} in {url!r}: known options are {sorted(_OPTIONS)}")
        if key in OPTIONS:
            name, parsed = parse_option(url, key, value, scheme)
            sockopts[name] = parsed
            continue
        if key == "proxy":
            if value not in _PROXY_VERSIONS:
                raise ValueError(f"proxy must be v1, v2 or any in {url!r}, not {value!r}")
            proxy = _PROXY_VERSIONS[value]
            continue
        try:
            backlog = int(value)
        except ValueError:
            raise ValueError(f"backlog must be a positive integer in {url!r}") from None
        if backlog < 1:
            raise ValueError(f"backlog must be a positive integer in {url!r}")
    return backlog, proxy, tuple(sorted(sockopts.items()))


def _parse_unix_path(url: str, netloc: str, path: str) -> str:
    if netloc.startswith("@"):
        name = netloc[1:] + path
        if not name:
            raise ValueError(f"empty abstract socket name in {url!r}: write unix://@name")
        return "\0" + name
    if netloc or not path.startswith("/"):
        raise ValueError(
            f"unix socket path must be absolute in {url!r}: write unix:///abs/path "
            "(three slashes) or unix://@name for an abstract socket"
        )
    return path


def _format_unix_path(path: str) -> str:
    if path.startswith("\0"):
        return "@" + path[1:]
    return path


def format_url(scheme: str, address: object) -> str:
    """The URL of a socket address as returned by ``getsockname()``/``getpeername()``."""
    if isinstance(address, tuple):
        host, port = str(address[0]), int(address[1])
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{port}"
    if isinstance(address, bytes):  # abstract names come back as bytes
        address = address.decode("utf-8", "backslashreplace")
    path = str(address)
    return f"{scheme}://{_format_unix_path(path)}" if path else f"{scheme}://(unnamed)"


#: Peer host strings a listener shares among its connections: ten thousand connections from one
#: client, proxy or load balancer hold one copy of its address, not ten thousand (58 bytes each).
#: Bounded (not sys.intern, whose strings are immortal on Python 3.12: one per IPv6 peer, forever).
_PEER_HOSTS_KEPT = 1024


class Listener:
    """A bound (and, for streams, listening) socket with the endpoint it came from.

    Closing it removes the unix socket file it created, if the file is still ours.
    An adopted connected socket (``endpoint.connected``) is a Listener too, one that
    is its only connection: the engine serves :attr:`sock` from :attr:`peer` at once.
    """

    def __init__(self, sock: socket.socket, endpoint: Endpoint) -> None:
        self.sock = sock
        self.endpoint = endpoint
        address = sock.getsockname()
        #: the bound address, as ``getsockname()`` gives it (port 0 resolved); kept, so it
        #: can be read while a stopping server closes the socket
        self.address: Any = address
        self.url = format_url(endpoint.scheme, address)
        #: the local address of every connection accepted here, when the bind
        #: address says it (not a wildcard): no getsockname() per connection.
        self.accepted_local: Any = None
        if endpoint.is_stream and not (isinstance(address, tuple) and address[0] in ("0.0.0.0", "::")):
            self.accepted_local = address
        self._family, self._type, self._proto = int(sock.family), int(sock.type), sock.proto
        #: whether accepted TCP connections still need TCP_NODELAY set (they
        #: inherit it from a listener that has it on Linux; ``?nodelay=0`` wants it off).
        self.set_nodelay = False
        if endpoint.is_stream and not endpoint.is_unix and endpoint.options.get("nodelay", True):
            inherited = sys.platform.startswith("linux")
            self.set_nodelay = not (inherited and sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        self._accept: Callable[[], tuple[int, Any]] = getattr(sock, "_accept")  # noqa: B009 - not in typeshed
        self._peer_hosts: dict[str, str] = {}  # the peer address strings in use, shared (see accept)
        #: the byte layers each connection accepted here gets (TLS on a tls:// listener)
        self.layer_factories: tuple[Callable[[], Any], ...] = ()
        #: whether accepted peers count against max_connections_per_ip at accept; not when
        #: a PROXY header names the real peer later
        self.counts_per_ip = endpoint.proxy is None
        #: the peer of an adopted connected socket (None for a listener)
        self.peer: Any = sock.getpeername() if endpoint.connected else None
        self._inode: int | None = None
        if endpoint.is_unix and not endpoint.connected and not endpoint.path.startswith("\0"):
            self._inode = os.stat(endpoint.path).st_ino

    @property
    def described(self) -> str:
        """The URL, and for a wildcard address which families it takes: for the log."""
        if self.endpoint.connected:
            return f"{self.url} (one connection, from {format_url(self.endpoint.scheme, self.peer)})"
        address = self.sock.getsockname()
        if not isinstance(address, tuple) or address[0] not in ("0.0.0.0", "::"):
            return self.url
        if address[0] == "0.0.0.0":
            return f"{self.url} (every IPv4 interface)"
        v6only = self.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
        return f"{self.url} (every interface, {'IPv6 only' if v6only else 'IPv4 and IPv6'})"

    def accept(self) -> tuple[socket.socket, Any]:
        """``sock.accept()`` without its per-call enum conversions (a hot path under churn).

        The new socket is in blocking mode, whatever the listener's mode.
        """
        fd, addr = self._accept()
        sock = socket.socket(self._family, self._type, self._proto, fd)
        if sock.gettimeout() is not None:  # socket.setdefaulttimeout() was used: undo it
            sock.settimeout(None)
        if type(addr) is tuple:  # one string per peer host, not one per connection
            hosts = self._peer_hosts
            host = hosts.get(addr[0])
            if host is None:
                if len(hosts) >= _PEER_HOSTS_KEPT:
                    hosts.clear()
                host = hosts[addr[0]] = addr[0]
            addr = (host, *addr[1:])
        return sock, addr

    def fileno(self) -> int:
        return self.sock.fileno()

    def shared(self) -> None:
        """This process shares the socket with the one that made it (a prefork worker):
        closing it here leaves the unix socket file alone."""
        self._inode = None

    def close(self) -> None:
        if self.sock.fileno() == -1:
            return
        self.sock.close()
        if self._inode is not None:
            with contextlib.suppress(OSError):
                if os.stat(self.endpoint.path).st_ino == self._inode:
                    os.unlink(self.endpoint.path)


def describe_socket(sock: socket.socket) -> Endpoint:
    """The endpoint an existing socket is bound to (a socket passed by systemd, or made by
    the caller): its scheme from its family and type, its address from getsockname(), and
    whether it is a connected stream socket (served as one connection) rather than one
    to listen on.

    Raises:
        ValueError: it is not an inet or unix socket of stream or datagram type, or
            neither bound nor connected.
    """
    kind = sock.type
    if kind not in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        raise ValueError(f"socket fd {sock.fileno()} is neither a stream nor a datagram socket")
    stream = kind == socket.SOCK_STREAM
    connected = stream and _is_connected(sock)
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        if isinstance(address, bytes):
            address = (
                "\0" + address[1:].decode("utf-8", "backslashreplace")
                if address[:1] == b"\0"
                else address.decode()
            )
        if not address and not connected:
            raise ValueError(
                f"unix socket fd {sock.fileno()} is neither bound to a path or name nor connected"
            )
        return Endpoint("unix" if stream else "unixgram", kind, path=str(address), connected=connected)
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        raise ValueError(f"socket fd {sock.fileno()} is of family {sock.family!r}: not inet or unix")
    host, port = str(address[0]), int(address[1])
    return Endpoint(
        "tcp" if stream else "udp",
        kind,
        host="" if host in ("0.0.0.0", "::") else host,
        port=port,
        connected=connected,
    )


def _is_connected(sock: socket.socket) -> bool:
    """Whether a stream socket is a connection (has a peer), not a listener or a bare socket."""
    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        return False
    try:
        sock.getpeername()
    except OSError:  # ENOTCONN: bound (or not even that), to be listened on
        return False
    return True


def adopt(sock: socket.socket, endpoint: Endpoint) -> Listener:
    """A Listener for a socket bound elsewhere: a stream socket is put to listening, if it is
    not already (socket activation passes it listening; a caller's may be only bound). A
    connected socket is put in blocking mode, as accepted ones are, and served as it is."""
    if endpoint.connected:
        sock.setblocking(True)
    elif endpoint.is_stream and not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.listen(endpoint.backlog)
    return Listener(sock, endpoint)


def bind(endpoint: Endpoint) -> Listener:
    """Create the listening (stream) or bound (datagram) socket for ``endpoint``.

    Raises:
        BindError: the address is in use, not permitted, or cannot be resolved;
            or a unix path exists and is not a stale socket.
    """
    try:
        sock = _bind_unix(endpoint) if endpoint.is_unix else _bind_inet(endpoint)
    except BindError:
        raise
    except OSError as exc:
        reason = exc.strerror or str(exc)
        hint = ""
        if isinstance(exc, socket.gaierror):
            hint = " (check the host name)"
        elif exc.errno == getattr(os, "EADDRINUSE", 98) or "in use" in reason:
            hint = " (is another server running there? stop it or pick another port; port 0 picks a free one)"
        elif isinstance(exc, PermissionError) and endpoint.is_unix:
            hint = " (you may not create a socket there: pick a directory you can write to)"
        elif isinstance(exc, PermissionError):
            hint = " (ports below 1024 need privileges; pick a port above 1023)"
        raise BindError(f"cannot listen on {endpoint.url}: {reason}{hint}") from exc
    return Listener(sock, endpoint)


def _bind_inet(endpoint: Endpoint) -> socket.socket:
    host = endpoint.host
    address: tuple[str, int]
    if host:
        family, address = _resolve(host, endpoint.port, endpoint.type)
    else:  # all interfaces: one dual-stack IPv6 socket where the OS allows it
        family = socket.AF_INET6 if socket.has_dualstack_ipv6() else socket.AF_INET
        address = ("::" if family == socket.AF_INET6 else "0.0.0.0", endpoint.port)
    options = endpoint.options
    group = is_group(endpoint)
    sock = socket.socket(family, endpoint.type)
    try:
        if endpoint.is_stream or group:  # (a group's port is shared by its members here)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            v6only = options.get("v6only", bool(host))  # "*" is dual-stack unless told otherwise
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if v6only else 0)
        # Request/reply traffic must not wait for Nagle's algorithm (nodelay, on by default).
        # Linux passes these options on to accepted connections: no call per accept.
        apply_before_bind(sock, options, endpoint.is_stream)
        sock.bind(address)
        if group:
            join_group(sock, address[0], options)
        if endpoint.is_stream:
            sock.listen(endpoint.backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def is_group(endpoint: Endpoint) -> bool:
    """Whether ``endpoint`` is an IPv4 multicast group (``udp://239.1.2.3:5000``)."""
    try:
        return endpoint.scheme == "udp" and ipaddress.IPv4Address(endpoint.host).is_multicast
    except ValueError:
        return False


def sends_to_many(endpoint: Endpoint) -> bool:
    """Whether a datagram client of ``endpoint`` sends to many (a multicast group, or a
    broadcast address with ``?broadcast=1``): its socket is not connected, so replies are
    taken from whoever answers."""
    return is_group(endpoint) or (endpoint.scheme == "udp" and bool(endpoint.options.get("broadcast")))


def _resolve(host: str, port: int, kind: socket.SocketKind) -> tuple[socket.AddressFamily, tuple[str, int]]:
    infos = socket.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    return family, (str(sockaddr[0]), int(sockaddr[1]))


def _bind_unix(endpoint: Endpoint) -> socket.socket:
    path = endpoint.path
    if not path.startswith("\0"):
        _remove_stale_socket(path, endpoint)
    sock = socket.socket(socket.AF_UNIX, endpoint.type)
    try:
        apply_before_bind(sock, endpoint.options, endpoint.is_stream)
        sock.bind(path)
        apply_after_bind(path, endpoint.options)  # before listen: no one connects through 0644
        if endpoint.is_stream:
            sock.listen(endpoint.backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def _remove_stale_socket(path: str, endpoint: Endpoint) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise BindError(
            f"cannot listen on {endpoint.url}: {path} exists and is not a socket "
            "(remove it yourself or pick another path)"
        )
    # Never blocks: a listener whose backlog is full (a stopped process) answers EAGAIN to a
    # non-blocking connect, where a blocking one would wait for it forever.
    probe = socket.socket(socket.AF_UNIX, endpoint.type)
    probe.setblocking(False)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)  # a socket file nobody listens on: left behind by a dead server
        return
    except BlockingIOError:
        raise BindError(
            f"cannot listen on {endpoint.url}: another process is listening on {path} "
            "(its backlog is full: is it stopped?)"
        ) from None
    except OSError:
        pass
    finally:
        probe.close()
    raise BindError(f"cannot listen on {endpoint.url}: another process is listening on {path}")


def check_timeout(timeout: float | None) -> None:
    """A client's timeout: positive seconds, or None (no bound). 0 is refused: a socket with a
    zero timeout is non-blocking, and its "nothing yet" would read as a broken connection."""
    if timeout is not None and not timeout > 0:
        raise ValueError(
            f"timeout must be a positive number of seconds (or None to wait forever), not {timeout!r}"
        )


def check_client_options(endpoint: Endpoint) -> None:
    """Refuse what only a listener has, for a URL that is connected to: a client would
    ignore it, and an option taken and ignored is a surprise."""
    only = [key for key in LISTENER_ONLY if key in endpoint.options]
    if endpoint.backlog != DEFAULT_BACKLOG:
        only.append("backlog")
    if endpoint.proxy is not None:
        only.append("proxy")
    if only:
        raise ValueError(
            f"?{only[0]}= is for a listener, not a URL to connect to ({endpoint.url}); "
            "leave it out of the client's URL"
        )


def connect_socket(
    endpoint: Endpoint,
    timeout: float | None,
    source_address: tuple[str, int] | None = None,
    happy_eyeballs_delay: float = DEFAULT_DELAY,
) -> socket.socket:
    """A socket connected to ``endpoint`` (datagram sockets are connected too), with the
    URL's socket options set on it.

    A host with several addresses is connected to by happy eyeballs (RFC 8305,
    :mod:`socketkit.eyeballs`): IPv6 and IPv4 interleaved, the next attempt
    ``happy_eyeballs_delay`` seconds after the one before (or at once when it fails), the
    first to connect wins. Unix datagram sockets are bound to an autobound abstract
    address first, so the server has somewhere to send its reply.

    Raises:
        ValueError: the URL carries an option only a listener has (``?backlog=``,
            ``?proxy=``, ``?reuseport=``...), or ``timeout`` is 0.
        ConnectError / ConnectTimeout: refused, unreachable, unresolvable, timed out.
    """
    check_client_options(endpoint)
    check_timeout(timeout)
    if happy_eyeballs_delay < 0:
        raise ValueError(f"happy_eyeballs_delay must be >= 0 seconds, not {happy_eyeballs_delay!r}")
    options = endpoint.options
    try:
        if endpoint.is_unix:
            sock = socket.socket(socket.AF_UNIX, endpoint.type)
            try:
                sock.settimeout(timeout)
                if not endpoint.is_stream:
                    sock.bind("")
                sock.connect(endpoint.path)
            except BaseException:
                sock.close()
                raise
            return sock
        host = endpoint.host or "localhost"
        if endpoint.is_stream:

            def prepare(sock: socket.socket) -> None:
                # (TCP_NODELAY on unless nodelay=0: a small request must not wait for the ACK
                # of the one before; Nagle's algorithm against a delayed ACK costs 40 ms.)
                apply_to_client(sock, options)
                if source_address is not None:
                    sock.bind(source_address)

            infos = socket.getaddrinfo(host, endpoint.port, type=socket.SOCK_STREAM)
            stream = connect_first(infos, timeout, happy_eyeballs_delay, prepare)
            stream.settimeout(timeout)
            return stream
        family, _, _, _, sockaddr = socket.getaddrinfo(host, endpoint.port, type=endpoint.type)[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.settimeout(timeout)
            apply_to_client(sock, options)
            if source_address is not None:
                sock.bind(source_address)
            if not sends_to_many(endpoint):  # (to many: replies come from whoever answers)
                sock.connect(sockaddr)
        except BaseException:
            sock.close()
            raise
        return sock
    except PermissionError as exc:
        if endpoint.scheme == "udp" and not options.get("broadcast"):  # (the kernel's EACCES)
            raise ConnectError(
                f"cannot send to {endpoint.url}: a broadcast address needs ?broadcast=1 on the URL"
            ) from exc
        raise translate_oserror(exc, endpoint.url, "connect") from exc
    except OSError as exc:
        raise translate_oserror(exc, endpoint.url, "connect") from exc
