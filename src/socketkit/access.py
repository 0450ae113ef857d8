"""Who may connect: allow and deny lists of addresses and networks (ncat's --allow/--deny).

Why a list on the server and not only a firewall's: a newcomer runs a service on
a shared machine or a lab network without root, and ncat and socat users expect
the option; the rule is checked once per connection, at accept (or, behind a
PROXY header, once the real peer is known), never per message. A refused peer is
closed at once, counted as rejected and logged (sampled), as one over
``max_connections_per_ip`` is. Unix-socket peers have no address: file
permissions (``?mode=``) decide there.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable

__all__ = ["OPEN", "AccessList", "Network", "parse_networks"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    """Parse addresses and networks (``10.0.0.0/8``, ``::1``); ValueError names a bad one."""
    networks = []
    for cidr in cidrs:
        try:
            networks.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{cidr!r} is not an address or network: write e.g. 10.0.0.0/8 or ::1") from None
    return tuple(networks)


@dataclasses.dataclass(frozen=True)
class AccessList:
    """``allow``: if given, only these may connect; ``deny``: these may not (deny wins)."""

    allow: tuple[Network, ...] | None = None
    deny: tuple[Network, ...] = ()
    #: whether any peer can be refused (an attribute, not a property: read per accept, and an
    #: open list costs no check)
    limited: bool = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "limited", self.allow is not None or bool(self.deny))

    @classmethod
    def make(cls, allow: Iterable[str] | None = None, deny: Iterable[str] = ()) -> AccessList:
        """From strings. Raises ValueError for an address or network that does not parse."""
        allowed = None if allow is None else parse_networks(allow)
        if allowed == ():
            raise ValueError("allow=[] would refuse everyone: give the networks to let in, or None")
        return cls(allowed, parse_networks(deny))

    def refusal(self, host: str) -> str | None:
        """Why the peer at ``host`` (an IP address) is refused, or None if it may connect."""
        try:
            address = ipaddress.ip_address(host.partition("%")[0])  # (a scope id: fe80::1%eth0)
        except ValueError:
            return f"{host} is not an IP address"
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # a dual-stack listener's IPv4 peer
        if any(address in network for network in self.deny):
            return f"{host} is in the deny list"
        if self.allow is not None and not any(address in network for network in self.allow):
            return f"{host} is not in the allow list"
        return None


#: no list: everyone may connect
OPEN = AccessList()
