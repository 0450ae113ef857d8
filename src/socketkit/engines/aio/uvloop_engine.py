"""uvloop: the asyncio engine on uvloop's event loop (libuv), when it is installed.

Everything but the loop is the asyncio engine's (:mod:`.asyncio_engine`): the same
sessions, accept gate, deadlines and stop, so the conformance suite holds it
to the same behaviour. Two things uvloop does differently are met there: an
exception from a protocol callback (a second Ctrl-C raised inside a handler)
is raised again from a plain callback, which ends the loop; and datagrams are
read with ``add_reader``, not datagram transports (whose unix sender addresses
uvloop mangles). uvloop is optional (the ``uvloop`` extra): naming the engine
without it fails with a message that says how to install it.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from .asyncio_engine import AsyncioEngine

__all__ = ["UvloopEngine"]


class UvloopEngine(AsyncioEngine):
    """socketkit on a uvloop loop (see :mod:`.asyncio_engine`)."""

    name: ClassVar[str] = "uvloop"

    @classmethod
    def check_available(cls) -> None:
        try:
            import uvloop  # noqa: F401, PLC0415 - optional: imported only when this engine is named
        except ImportError:
            raise ValueError(
                "engine 'uvloop' needs the uvloop package: pip install 'socketkit[uvloop]' "
                "(or choose engine 'asyncio')"
            ) from None

    def new_loop(self) -> asyncio.AbstractEventLoop:
        import uvloop  # noqa: PLC0415

        return uvloop.new_event_loop()
