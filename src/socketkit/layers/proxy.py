"""ProxyProtocolLayer: the PROXY protocol header (v1 text, v2 binary), as a sans-IO layer.

Why a layer: a load balancer (HAProxy ``send-proxy-v2``, AWS NLB, GCP) opens
the connection, so the socket's peer is the balancer; the header it sends
first names the real client. Parsed here, before TLS and the codec, it works
the same on every engine. Written from haproxy's specification
(doc/proxy-protocol.txt). :func:`proxy_header` writes one, for a relay that passes its
client's address on.

Rules kept: the header is required and comes first (anything else closes the
connection: a client that talks to a PROXY port directly could otherwise claim
any address); it is accepted only from trusted addresses (a balancer), by
default loopback; it must arrive within ``read_timeout`` (the connection
counts as a message in progress until then); a v2 ``LOCAL`` command (a health
check) keeps the socket's own addresses; a v1 line ends in CRLF (a bare LF is
refused when it arrives, not waited on) and both of its addresses and ports
must be valid, or the header is refused (a broken proxy is not believed). v2 TLVs are kept as
``{type: value}`` (``PP2_TYPE_AUTHORITY`` is the SNI the client asked the
balancer for; ``PP2_TYPE_SSL`` what its TLS was).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

from ..access import parse_networks
from ..errors import RemoteProtocolError
from . import Layer

__all__ = [
    "DEFAULT_TRUSTED",
    "PP2_TYPE_ALPN",
    "PP2_TYPE_AUTHORITY",
    "PP2_TYPE_SSL",
    "PP2_TYPE_UNIQUE_ID",
    "ProxyProtocolLayer",
    "proxy_header",
    "trusted_networks",
]

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
V1_MAX = 107  # the longest v1 line, CRLF included
PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_UNIQUE_ID = 0x05
PP2_TYPE_SSL = 0x20
#: Who may send a PROXY header unless told otherwise: this machine only.
DEFAULT_TRUSTED = ("127.0.0.0/8", "::1/128")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """Parse CIDRs (``10.0.0.0/8``, ``::1``); ValueError names a bad one."""
    return parse_networks(cidrs)


class ProxyProtocolLayer(Layer):
    """``ProxyProtocolLayer(versions=("v1", "v2"), trusted=DEFAULT_TRUSTED networks)``."""

    readdresses = True

    __slots__ = (
        "_buf",
        "_trusted",
        "_untrusted_peer",
        "_versions",
        "command",
        "done",
        "source",
        "tlvs",
        "version",
    )

    def __init__(
        self, versions: Iterable[str] = ("v1", "v2"), trusted: Iterable[Network] | None = None
    ) -> None:
        self._versions = frozenset(versions)
        self._trusted = tuple(trusted) if trusted is not None else trusted_networks(DEFAULT_TRUSTED)
        self._buf = bytearray()
        self._untrusted_peer: str | None = None
        self.done = False
        #: The client's address as the balancer saw it (a socket-module tuple), or None for
        #: a LOCAL (health check) or UNKNOWN header: then the socket's own peer stands.
        self.source: tuple[Any, ...] | None = None
        self.version = ""
        self.command = ""
        self.tlvs: dict[int, bytes] = {}

    @property
    def in_progress(self) -> bool:
        return not self.done

    @property
    def peer_address(self) -> tuple[Any, ...] | None:
        return self.source

    def opened(self, peer: Any) -> None:
        host = peer[0] if isinstance(peer, tuple) else None
        if host is None:
            return  # a unix socket: only local processes can connect
        address = ipaddress.ip_address(host.split("%", 1)[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not any(address in network for network in self._trusted):
            self._untrusted_peer = str(address)

    def feed(self, data: bytes) -> bytes:
        if self.done:
            return data
        if self._untrusted_peer is not None:
            raise RemoteProtocolError(
                f"PROXY header expected from a trusted proxy, and {self._untrusted_peer} is not one "
                "(add it with --trusted-proxy)"
            )
        buf = self._buf
        buf += data
        rest = self._parse(buf)
        if rest is None:
            return b""
        self.done = True
        self._buf = bytearray()
        return rest

    def end(self) -> None:
        if not self.done:
            raise RemoteProtocolError("connection closed before its PROXY header was complete")

    def _parse(self, buf: bytearray) -> bytes | None:
        """The bytes after a complete header, None while it is incomplete; raises if it is bad."""
        if "v2" in self._versions and buf[:12] == V2_SIGNATURE[: len(buf)]:
            if len(buf) < 16:
                return None
            length = int.from_bytes(buf[14:16], "big")
            if len(buf) < 16 + length:
                return None
            self._parse_v2(bytes(buf[12:16]), bytes(buf[16 : 16 + length]))
            return bytes(buf[16 + length :])
        if "v1" in self._versions and buf[:6] == V1_PREFIX[: len(buf)]:
            lf = buf.find(b"\n", 0, V1_MAX)
            if lf < 0:
                if len(buf) >= V1_MAX:
                    raise RemoteProtocolError("PROXY v1 header longer than 107 bytes")
                return None
            if buf[lf - 1 : lf] != b"\r":  # refused now: no CRLF is coming after this LF
                raise RemoteProtocolError("PROXY v1 header must end in CRLF, not a bare LF")
            self._parse_v1(bytes(buf[: lf - 1]))
            return bytes(buf[lf + 1 :])
        wanted = " or ".join(sorted(self._versions))
        raise RemoteProtocolError(f"no PROXY protocol {wanted} header (this port expects one first)")

    def _parse_v1(self, line: bytes) -> None:
        self.version = "v1"
        parts = line.decode("ascii", "replace").split(" ")
        if parts[1:2] == ["UNKNOWN"]:
            self.command = "UNKNOWN"
            return
        if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
            raise RemoteProtocolError(f"malformed PROXY v1 header {line[:60]!r}")
        _, family, source, destination, source_port, destination_port = parts
        # Both ends are checked: a proxy that writes a bad destination is broken, and its
        # source is not believed either.
        version = 4 if family == "TCP4" else 6
        try:
            host = ipaddress.ip_address(source)
            ends_valid = (
                host.version == version
                and ipaddress.ip_address(destination).version == version
                and _is_port(source_port)
                and _is_port(destination_port)
            )
        except ValueError:
            ends_valid = False
        if not ends_valid:
            raise RemoteProtocolError(f"malformed PROXY v1 header {line[:60]!r}")
        port = int(source_port)
        self.command = "PROXY"
        self.source = (str(host), port) if host.version == 4 else (str(host), port, 0, 0)

    def _parse_v2(self, head: bytes, body: bytes) -> None:
        self.version = "v2"
        version_command, family = head[0], head[1]
        if version_command >> 4 != 2 or version_command & 0x0F > 1:
            raise RemoteProtocolError(f"bad PROXY v2 version/command byte 0x{version_command:02x}")
        self.command = "PROXY" if version_command & 0x0F else "LOCAL"
        size = {0x11: 12, 0x12: 12, 0x21: 36, 0x22: 36, 0x31: 216, 0x32: 216}.get(family, 0)
        if len(body) < size:
            raise RemoteProtocolError("PROXY v2 header shorter than its addresses")
        self.tlvs = _tlvs(body[size:])
        if self.command == "LOCAL":
            return  # a health check from the balancer itself: the socket's addresses stand
        if family in (0x11, 0x12):
            self.source = (socket.inet_ntop(socket.AF_INET, body[0:4]), int.from_bytes(body[8:10], "big"))
        elif family in (0x21, 0x22):
            host = socket.inet_ntop(socket.AF_INET6, body[0:16])
            self.source = (host, int.from_bytes(body[32:34], "big"), 0, 0)


def _is_port(text: str) -> bool:
    """A port as the v1 header writes it: decimal 0 to 65535, no sign, no leading zero."""
    return text.isascii() and text.isdigit() and text == str(int(text)) and int(text) <= 65535


def _tlvs(data: bytes) -> dict[int, bytes]:
    tlvs: dict[int, bytes] = {}
    pos = 0
    while pos + 3 <= len(data):
        kind, length = data[pos], int.from_bytes(data[pos + 1 : pos + 3], "big")
        if pos + 3 + length > len(data):
            raise RemoteProtocolError("PROXY v2 TLV runs past the header")
        tlvs[kind] = data[pos + 3 : pos + 3 + length]
        pos += 3 + length
    return tlvs


def proxy_header(version: str, source: Any, destination: Any) -> bytes:
    """The PROXY header (``version`` "v1" or "v2") saying a TCP connection came from
    ``source`` to ``destination`` (socket addresses: ``(host, port)``, or IPv6's 4-tuple).
    Where either is not an IP address (a unix socket's peer) it says nothing of them: v1
    ``UNKNOWN``, v2 ``LOCAL``, as the specification asks. An IPv4 address facing an IPv6 one
    is written as IPv4-mapped IPv6, so both are of one family."""
    ends = _ip_ends(source, destination)
    if version == "v1":
        if ends is None:
            return b"PROXY UNKNOWN\r\n"
        (src, src_port), (dst, dst_port) = ends
        protocol = "TCP4" if src.version == 4 else "TCP6"
        return f"PROXY {protocol} {src} {dst} {src_port} {dst_port}\r\n".encode("ascii")
    if version != "v2":
        raise ValueError(f"PROXY protocol version must be v1 or v2, not {version!r}")
    if ends is None:
        return V2_SIGNATURE + bytes([0x20, 0x00]) + (0).to_bytes(2, "big")
    (src, src_port), (dst, dst_port) = ends
    family = 0x11 if src.version == 4 else 0x21  # TCP over IPv4, TCP over IPv6
    body = src.packed + dst.packed + src_port.to_bytes(2, "big") + dst_port.to_bytes(2, "big")
    return V2_SIGNATURE + bytes([0x21, family]) + len(body).to_bytes(2, "big") + body


_Ip = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ip_ends(source: Any, destination: Any) -> tuple[tuple[_Ip, int], tuple[_Ip, int]] | None:
    try:
        src = ipaddress.ip_address(str(source[0]).split("%", 1)[0])
        dst = ipaddress.ip_address(str(destination[0]).split("%", 1)[0])
        ports = int(source[1]), int(destination[1])
    except (TypeError, ValueError, IndexError):
        return None  # (a unix socket's address: a path, or nothing)
    if isinstance(src, ipaddress.IPv6Address) and isinstance(dst, ipaddress.IPv6Address):
        if src.ipv4_mapped is not None and dst.ipv4_mapped is not None:
            src, dst = src.ipv4_mapped, dst.ipv4_mapped  # (a dual-stack listener's IPv4 peer)
    elif src.version != dst.version:  # one of each: both as IPv6
        src, dst = (_as_v6(src), _as_v6(dst))
    return (src, ports[0]), (dst, ports[1])


def _as_v6(ip: _Ip) -> ipaddress.IPv6Address:
    return ip if isinstance(ip, ipaddress.IPv6Address) else ipaddress.IPv6Address(f"::ffff:{ip}")
