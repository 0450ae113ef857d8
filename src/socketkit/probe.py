"""Port probing, as ``nc -z`` does it: which TCP ports accept a connection.

Every port is tried at once with a non-blocking ``connect_ex``; one ``poll``
waits for them all, so probing 1,000 ports takes one timeout, not 1,000. At
most ``concurrency`` sockets are open at a time.
"""

from __future__ import annotations

import errno
import select
import socket
import time
from typing import Literal

__all__ = ["PortState", "parse_ports", "probe"]

PortState = Literal["open", "closed", "timeout"]


def parse_ports(spec: str) -> list[int]:
    """``"22,80,8000-8010"`` as a sorted list of distinct ports.

    Raises:
        ValueError: a part is not a port or a range, or is outside 1-65535.
    """
    ports: set[int] = set()
    for raw_part in spec.split(","):
        part = raw_part.strip()
        low, dash, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise ValueError(f"bad port {part!r} in {spec!r}: write ports as 22,80,8000-8010") from None
        if not (1 <= first <= last <= 65535):
            raise ValueError(f"bad port range {part!r} in {spec!r}: ports go from 1 to 65535, low-high")
        ports.update(range(first, last + 1))
    return sorted(ports)


def probe(host: str, ports: list[int], timeout: float = 2.0, concurrency: int = 512) -> dict[int, PortState]:
    """The state of each TCP port on ``host``.

    Raises:
        socket.gaierror: ``host`` cannot be resolved.
    """
    family, _, _, _, sockaddr = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0]
    address = str(sockaddr[0])
    results: dict[int, PortState] = {}
    for start in range(0, len(ports), concurrency):
        results.update(_probe_batch(family, address, ports[start : start + concurrency], timeout))
    return results


def _probe_batch(
    family: socket.AddressFamily, address: str, ports: list[int], timeout: float
) -> dict[int, PortState]:
    results: dict[int, PortState] = {}
    pending: dict[int, tuple[socket.socket, int]] = {}
    poller = select.poll()
    try:
        for port in ports:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            code = sock.connect_ex((address, port))
            if code == 0:
                results[port] = "open"
                sock.close()
            elif code == errno.EINPROGRESS:
                pending[sock.fileno()] = (sock, port)
                poller.register(sock, select.POLLOUT)
            else:
                results[port] = "closed"
                sock.close()
        deadline = time.monotonic() + timeout
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for fd, _ in poller.poll(remaining * 1000):
                sock, port = pending.pop(fd)
                poller.unregister(fd)
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                results[port] = "open" if error == 0 else "closed"
                sock.close()
        for _, port in pending.values():
            results[port] = "timeout"
    finally:
        for sock, _ in pending.values():
            sock.close()
    return results
