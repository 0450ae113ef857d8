"""Engines by name (as uvicorn's config maps loop names to classes).

Modules are imported only when an engine is chosen, so naming an engine the
system lacks (``epoll`` off Linux) fails with a clear message, not at import.
"""

from __future__ import annotations

import importlib
import importlib.util

from ..handlers import Handler
from .base import Engine

__all__ = ["ENGINES", "Engine", "engine_class", "resolve_engine_name"]

ENGINES: dict[str, str] = {
    "iterative": "socketkit.engines.iterative:IterativeEngine",
    "threads": "socketkit.engines.threads:ThreadsEngine",
    "select": "socketkit.engines.reactor:SelectEngine",
    "poll": "socketkit.engines.reactor:PollEngine",
    "epoll": "socketkit.engines.reactor:EpollEngine",
    "reactor": "socketkit.engines.reactor:ReactorEngine",
    "pool": "socketkit.engines.pool:PoolEngine",
    "asyncio": "socketkit.engines.aio:AsyncioEngine",
    "uvloop": "socketkit.engines.aio_uvloop:UvloopEngine",
    # a master and worker processes, each running one of the above: Server(workers=N)
    "prefork": "socketkit.engines.prefork:PreforkEngine",
}


def resolve_engine_name(name: str, handler: Handler) -> str:
    """``auto`` is the reactor; ``threads`` for a @blocking ``fn(conn)``, ``pool`` for a
    @blocking request/reply function; and for an ``async def`` handler the asyncio engine on
    the best loop there is: ``uvloop`` when it is installed, else ``asyncio`` (as uvicorn's
    ``--loop auto``; naming ``asyncio`` keeps the standard loop)."""
    if name == "auto":
        if handler.is_async:
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
