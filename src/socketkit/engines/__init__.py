"""Engines by name (as uvicorn's config maps loop names to classes), and their families.

Modules are imported only when an engine is chosen, so naming an engine the
system lacks (``epoll`` off Linux) fails with a clear message, not at import.

A family is a way to wait, and one folder: ``threaded/`` (a thread per
connection: iterative, threads), ``loop/`` (one thread and a poller: the
reactors, and pool with its threads for @blocking handlers), ``aio/`` (an
asyncio loop: asyncio, uvloop); ``common/`` holds what they share (accepting,
datagrams, deadlines, the lingering close), ``base.py`` the template and the
stop sequence. prefork is no engine: its master (``supervisor/``) supervises
worker processes, each of which runs one of these; ``engine="prefork"`` names
it only as a shorthand for ``workers="auto"`` (:mod:`socketkit.plan`).
"""

from __future__ import annotations

import importlib
import importlib.util

from ..handlers import Handler
from .base import Engine

__all__ = ["ENGINES", "FAMILIES", "Engine", "engine_class", "resolve_engine_name"]

ENGINES: dict[str, str] = {
    "iterative": "socketkit.engines.threaded.iterative:IterativeEngine",
    "threads": "socketkit.engines.threaded.threads:ThreadsEngine",
    "select": "socketkit.engines.loop.reactor:SelectEngine",
    "poll": "socketkit.engines.loop.reactor:PollEngine",
    "epoll": "socketkit.engines.loop.reactor:EpollEngine",
    "reactor": "socketkit.engines.loop.reactor:ReactorEngine",
    "pool": "socketkit.engines.loop.pool:PoolEngine",
    "asyncio": "socketkit.engines.aio.asyncio_engine:AsyncioEngine",
    "uvloop": "socketkit.engines.aio.uvloop_engine:UvloopEngine",
}

#: which family each engine belongs to (its folder under engines/)
FAMILIES: dict[str, str] = {
    "iterative": "threaded",
    "threads": "threaded",
    "select": "loop",
    "poll": "loop",
    "epoll": "loop",
    "reactor": "loop",
    "pool": "loop",
    "asyncio": "aio",
    "uvloop": "aio",
}


def resolve_engine_name(name: str, handler: Handler) -> str:
    """``auto`` is the reactor; ``threads`` for a @blocking ``fn(conn)``, ``pool`` for a
    @blocking request/reply function; and for an ``async def`` handler the asyncio engine on
    the best loop there is: ``uvloop`` when it is installed, else ``asyncio`` (as uvicorn's
    ``--loop auto``; naming ``asyncio`` keeps the standard loop)."""
    if name == "auto":
        if handler.is_async or getattr(handler.target, "needs_event_loop", False):
            return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
        if handler.is_blocking:
            return "threads"
        return "pool" if handler.may_block else "reactor"
    return name


def engine_class(name: str) -> type[Engine]:
    """The engine class registered as ``name``.

    Raises:
        ValueError: no such engine, or it is not available on this system.
    """
    try:
        target = ENGINES[name]
    except KeyError:
        known = ", ".join([*ENGINES, "auto"])
        raise ValueError(f"unknown engine {name!r}: choose one of {known}") from None
    module_name, _, attr = target.partition(":")
    cls: type[Engine] = getattr(importlib.import_module(module_name), attr)
    cls.check_available()
    return cls
