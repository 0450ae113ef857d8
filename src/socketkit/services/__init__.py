"""Built-in services by name, each a small handler in its own module.

Why a registry of factories: ``socketkit serve NAME`` must list and build
services without importing all of them, and each server needs a fresh handler
(a broker's member list must not be shared between two servers).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..codecs import Codec, Raw

__all__ = ["SERVICES", "Service", "load_service"]


@dataclass(frozen=True)
class Service:
    """A built-in service: its handler and the codec it speaks."""

    name: str
    summary: str
    handler: Any
    codec: Codec = field(default_factory=Raw)
    #: False when the wire format is fixed (HTTP) and --codec must not change it.
    codec_selectable: bool = True
    #: What ``--backend URL`` does (the broker: relay through Redis): it sets the handler up
    #: and returns what each serving process runs before it serves (each worker, once
    #: forked). None: the service takes no backend.
    backend: Callable[[str], Callable[[], object]] | None = None
    # (what the handler needs, datagrams or one process, it says itself: every Server keeps
    # it, for a built-in service and a user's handler alike; see socketkit.Protocol)


#: name -> (module, one-line summary). The module's ``service()`` builds a Service.
SERVICES: dict[str, tuple[str, str]] = {
    "echo": ("echo", "RFC 862: sends back what it receives (TCP and UDP)"),
    "discard": ("discard", "RFC 863: reads and throws away (TCP and UDP)"),
    "daytime": ("daytime", "RFC 867: the date and time as text, then closes"),
    "chargen": ("chargen", "RFC 864: a rotating character pattern until the client closes"),
    "time": ("clock", "RFC 868: seconds since 1900 as 32-bit big-endian, then closes"),
    "qotd": ("qotd", "RFC 865: a quote of the day, then closes"),
    "hello": ("hello", 'HTTP/1.1 "Hello, world!" with keep-alive and pipelining'),
    "broker": ("broker", "every line from one client goes to every other client"),
    "chat": ("chat", "a chat page and its WebSocket on one port: open http://HOST:PORT/ in a browser"),
    "whoami": ("whoami", "how the server sees the client (after PROXY, with TLS): HTTP, or --codec lines"),
}


def load_service(name: str) -> Service:
    """A fresh Service for ``name``; KeyError if there is none."""
    module_name, _ = SERVICES[name]
    module = importlib.import_module(f"{__name__}.{module_name}")
    service: Service = module.service()
    return service
