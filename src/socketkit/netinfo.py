"""The socket module's look-ups in one place: names, addresses, interfaces, services.

Each look-up that fails is reported as an error string in its place rather
than raised, so one missing answer (no reverse DNS, say) does not hide the rest.
"""

from __future__ import annotations

import socket
from typing import Any

__all__ = ["host_info", "service_info"]

_FAMILIES = {socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}
_TYPES = {socket.SOCK_STREAM: "stream", socket.SOCK_DGRAM: "datagram", socket.SOCK_RAW: "raw"}


def host_info(host: str | None = None) -> dict[str, Any]:
    """Hostname, FQDN, getaddrinfo results, reverse look-ups and interfaces."""
    hostname = socket.gethostname()
    target = host or hostname
    info: dict[str, Any] = {"hostname": hostname, "fqdn": socket.getfqdn(), "host": target}
    addresses: list[dict[str, Any]] = []
    try:
        for family, kind, proto, _, sockaddr in socket.getaddrinfo(target, None):
            addresses.append(
                {
                    "family": _FAMILIES.get(family, str(family)),
                    "type": _TYPES.get(kind, str(kind)),
                    "protocol": proto,
                    "address": sockaddr[0],
                }
            )
    except socket.gaierror as exc:
        info["addresses_error"] = exc.strerror or str(exc)
    info["addresses"] = addresses
    reverse: dict[str, str] = {}
    for address in dict.fromkeys(a["address"] for a in addresses):
        try:
            reverse[address] = socket.gethostbyaddr(address)[0]
        except OSError as exc:
            reverse[address] = f"(no name: {exc.strerror or exc})"
    info["reverse"] = reverse
    info["interfaces"] = [{"index": index, "name": name} for index, name in socket.if_nameindex()]
    return info


def service_info(service: str) -> list[dict[str, Any]]:
    """``getservbyname`` (a name) or ``getservbyport`` (a number) for tcp and udp.

    Raises:
        ValueError: the service is unknown to both protocols, or the port is out of range.
    """
    rows: list[dict[str, Any]] = []
    if service.isdigit():
        port = int(service)
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} is outside 0-65535")
        for proto in ("tcp", "udp"):
            try:
                rows.append({"name": socket.getservbyport(port, proto), "port": port, "protocol": proto})
            except OSError:
                pass
    else:
        for proto in ("tcp", "udp"):
            try:
                rows.append(
                    {"name": service, "port": socket.getservbyname(service, proto), "protocol": proto}
                )
            except OSError:
                pass
    if not rows:
        raise ValueError(f"no service {service!r} in the services database (see /etc/services)")
    return rows
