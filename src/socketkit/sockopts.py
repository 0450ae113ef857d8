"""Socket options as endpoint query options: parsed and checked once, applied at bind.

Why in the URL: a listener's options belong to where it listens, and one string
then says all of it (``tcp://*:8000?keepalive=1&keepalive_idle=60&reuseport=1``),
in code, on the command line and in a unit file alike. Options that TCP
connections need (keepalive, buffer sizes, nodelay) are set on the listener:
Linux gives every accepted connection its listener's options, so no call is
made per connection.

Stream and datagram endpoints: ``rcvbuf``, ``sndbuf`` (bytes), ``reuseport``
(0/1, several processes share a port), ``interface`` (SO_BINDTODEVICE: only
that network interface, e.g. ``eth0``; needs CAP_NET_RAW), ``v6only`` (0/1,
for ``*`` and ``[::]``). TCP: ``keepalive`` (0/1) with ``keepalive_idle``,
``keepalive_interval`` (seconds) and ``keepalive_count``, ``nodelay`` (default
1). Unix paths: ``mode`` (octal, default 0600: only the owner may connect) and
``owner`` (``user`` or ``user:group``). UDP to many: ``broadcast`` (0/1,
SO_BROADCAST: a client may send to a broadcast address), and for an IPv4
multicast group (``udp://239.1.2.3:5000``) ``multicast_interface`` (the local
address whose interface joins and sends, default any), ``ttl`` (hops a sent
datagram may take, default 1: this network only) and ``loop`` (0/1: whether
this host's own members get what it sends, default 1). A listener on a group
address joins the group (and shares the port: SO_REUSEADDR).
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import socket
from typing import Any

__all__ = [
    "DEFAULT_UNIX_MODE",
    "LISTENER_ONLY",
    "OPTIONS",
    "apply_after_bind",
    "apply_before_bind",
    "apply_to_client",
    "join_group",
    "parse_option",
]

DEFAULT_UNIX_MODE = 0o600

_FLAGS = ("keepalive", "nodelay", "reuseport", "v6only", "broadcast", "loop")
_COUNTS = ("rcvbuf", "sndbuf", "keepalive_idle", "keepalive_interval", "keepalive_count", "ttl")
_INET_ONLY = (
    *_FLAGS,
    "rcvbuf",
    "sndbuf",
    "keepalive_idle",
    "keepalive_interval",
    "keepalive_count",
    "interface",
    "multicast_interface",
)
_TCP_ONLY = ("keepalive", "nodelay", "keepalive_idle", "keepalive_interval", "keepalive_count")
_UDP_ONLY = ("broadcast", "multicast_interface", "ttl", "loop")
_UNIX_ONLY = ("mode", "owner")
#: Every socket option an endpoint URL may carry.
OPTIONS = (*_FLAGS, *_COUNTS, "interface", "mode", "owner", "multicast_interface")
#: The options that mean something only where a socket listens (a client refuses them).
LISTENER_ONLY = ("reuseport", "v6only", "mode", "owner")


def parse_option(url: str, key: str, value: str, scheme: str) -> tuple[str, Any]:
    """(key, checked value) of one option for an endpoint of ``scheme``; ValueError says why not."""
    unix = scheme in ("unix", "unixgram")
    if key in _UNIX_ONLY and not unix:
        raise ValueError(f"?{key}= is for unix:// endpoints, not {url!r}")
    if key in _UDP_ONLY and scheme != "udp":
        raise ValueError(f"?{key}= is for udp:// endpoints, not {url!r}")
    if key in _INET_ONLY and unix:
        raise ValueError(f"?{key}= is for tcp://, tls:// and udp:// endpoints, not {url!r}")
    if key in _TCP_ONLY and scheme == "udp":
        raise ValueError(f"?{key}= is for TCP (tcp://, tls://), not {url!r}")
    if key == "ttl" and not (value.isdigit() and 1 <= int(value) <= 255):
        raise ValueError(f"ttl must be a number of hops from 1 to 255 in {url!r}, not {value!r}")
    if key == "multicast_interface":
        try:
            return key, str(ipaddress.IPv4Address(value))
        except ValueError:
            raise ValueError(
                f"multicast_interface must be a local IPv4 address such as 192.168.1.10 in {url!r}, "
                f"not {value!r}"
            ) from None
    if key in _FLAGS:
        if value not in ("0", "1"):
            raise ValueError(f"{key} must be 0 or 1 in {url!r}, not {value!r}")
        return key, value == "1"
    if key in _COUNTS:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{key} must be a positive integer in {url!r}, not {value!r}")
        return key, int(value)
    if key == "interface":
        if not value or len(value) >= 16:
            raise ValueError(f"interface must be a network interface name such as eth0 in {url!r}")
        return key, value
    if key == "mode":
        try:
            mode = int(value, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            raise ValueError(f"mode must be octal permissions such as 0600 in {url!r}, not {value!r}")
        return key, mode
    user, _, group = value.partition(":")
    try:
        uid = pwd.getpwnam(user).pw_uid if user else -1
        gid = grp.getgrnam(group).gr_gid if group else -1
    except KeyError:
        raise ValueError(f"owner {value!r} in {url!r}: no such user or group") from None
    return key, (uid, gid)


def apply_before_bind(sock: socket.socket, options: dict[str, Any], stream: bool) -> None:
    """The options that must be set before bind (and listen)."""
    if options.get("reuseport"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if "interface" in options:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, options["interface"].encode())
    if "rcvbuf" in options:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, options["rcvbuf"])
    if "sndbuf" in options:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, options["sndbuf"])
    if options.get("broadcast"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    if sock.family == socket.AF_INET and not stream:  # (what a sent multicast datagram does)
        if "multicast_interface" in options:
            interface = socket.inet_aton(options["multicast_interface"])
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, interface)
        if "ttl" in options:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, options["ttl"])
        if "loop" in options:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1 if options["loop"] else 0)
    if stream and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0 if options.get("nodelay") is False else 1)
        if options.get("keepalive"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for key, name in (
            ("keepalive_idle", "TCP_KEEPIDLE"),
            ("keepalive_interval", "TCP_KEEPINTVL"),
            ("keepalive_count", "TCP_KEEPCNT"),
        ):
            if key in options:
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), options[key])


def apply_to_client(sock: socket.socket, options: dict[str, Any]) -> None:
    """A client socket's options, before its connect: the listener's, less what only a
    listener has (:data:`LISTENER_ONLY`, refused when the URL is connected to); TCP_NODELAY
    is on unless ``nodelay=0``, as request/reply traffic wants."""
    apply_before_bind(sock, options, sock.type == socket.SOCK_STREAM)


def join_group(sock: socket.socket, group: str, options: dict[str, Any]) -> None:
    """A datagram listener bound to an IPv4 multicast ``group`` joins it, on the interface of
    ``multicast_interface`` (default: the one the kernel picks)."""
    interface = socket.inet_aton(options.get("multicast_interface", "0.0.0.0"))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + interface)


def apply_after_bind(path: str, options: dict[str, Any]) -> None:
    """A unix socket file's permissions (default 0600) and owner."""
    if path.startswith("\0"):
        return  # an abstract name has no file
    os.chmod(path, options.get("mode", DEFAULT_UNIX_MODE))
    if "owner" in options:
        uid, gid = options["owner"]
        os.chown(path, uid, gid)
