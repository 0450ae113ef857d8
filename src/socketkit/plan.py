"""The serving plan: what a server serves and how, resolved and checked once.

Why one object: a server's handler, codec, limits and engine used to be
carried three times (the Server's attributes, each engine's, each prefork
worker's), and the rules of which handler an engine can run lived in Server.
A :class:`ServingPlan` is made once, by :meth:`ServingPlan.make`: it resolves
``engine="auto"``, counts the workers, and refuses a handler its engine cannot
run (a ``@blocking`` one on a loop, an ``async def`` off asyncio, a service
whose clients meet in one process's memory under several workers) with a
one-line reason. A Server, its engine and every worker are built from it
(:meth:`ServingPlan.engine`), so they cannot disagree.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .access import OPEN, AccessList
from .closing import log
from .codecs import Codec
from .endpoints import Endpoint, Listener
from .engines import engine_class, resolve_engine_name
from .handlers import Handler
from .limits import Limits

if TYPE_CHECKING:
    from .engines.base import Engine
    from .stats import StatsRecorder

__all__ = ["ServingPlan", "usable_cores", "worker_count"]


@dataclasses.dataclass(frozen=True)
class ServingPlan:
    """What to serve (endpoints, handler, codec, limits) and how (engine, workers)."""

    endpoints: tuple[Endpoint, ...]
    handler: Handler
    codec: Codec
    limits: Limits
    #: the engine that serves connections (in each worker, with workers), resolved from "auto"
    engine_name: str
    engine_class: type[Engine]
    #: worker processes under a prefork master; None: this process serves
    workers: int | None = None
    worker_timeout: float = 30.0
    #: run in each worker before it serves (a broker connects to its backend there)
    worker_init: Callable[[], object] | None = None
    #: who may connect (``allow``/``deny``), checked as connections are accepted
    access: AccessList = OPEN

    @classmethod
    def make(
        cls,
        endpoints: Sequence[Endpoint],
        handler: Handler,
        codec: Codec,
        limits: Limits,
        engine: str = "auto",
        workers: int | str | None = None,
        worker_timeout: float = 30.0,
        worker_init: Callable[[], object] | None = None,
        access: AccessList = OPEN,
    ) -> ServingPlan:
        """The plan, checked.

        Raises:
            ValueError: an unknown engine, a bad worker count, or a handler the engine (or the
                endpoints, or the workers) cannot serve; the message says what to change.
            TypeError: an ``async def`` handler on an engine that does not await.
        """
        if engine == "prefork":  # a master and workers, each running the engine for the handler
            engine, workers = "auto", "auto" if workers is None else workers
        count = worker_count(workers)
        cores = usable_cores()
        if count is not None and count > 4 * cores:
            log.warning(
                "%d worker processes on %d core(s): past 4 a core they add memory and context "
                "switches, not throughput; workers='auto' runs one a core",
                count,
                cores,
            )
        if worker_timeout <= 0:
            raise ValueError("worker_timeout must be a positive number of seconds")
        name = resolve_engine_name(engine, handler)
        plan = cls(
            tuple(endpoints),
            handler,
            codec,
            limits,
            name,
            engine_class(name),
            count,
            worker_timeout,
            worker_init,
            access,
        )
        plan.check()
        return plan

    def check(self) -> None:
        """Refuse a handler that this engine, these endpoints or these workers cannot serve."""
        handler = self.handler
        target = handler.target
        datagrams = [e.url for e in self.endpoints if not e.is_stream]
        if datagrams and not getattr(target, "serves_datagrams", True):
            raise ValueError(
                f"{handler.name} does not serve datagrams: use a tcp:// or unix:// URL, "
                f"not {', '.join(datagrams)}"
            )
        if getattr(target, "one_process", False) and (self.workers or 1) > 1:
            fix = getattr(target, "one_process_fix", "")
            raise ValueError(
                f"{handler.name}'s clients meet in one process's memory, and with several "
                "workers each would have clients the others never see: serve it with one worker"
                + (f", {fix}" if fix else "")
            )
        if getattr(target, "needs_event_loop", False) and not self.engine_class.awaits_handlers:
            raise ValueError(
                f"{handler.name} works on the serving asyncio loop: use engine='asyncio' or "
                f"'uvloop' (or 'auto'), not {self.engine_name!r}"
            )
        if handler.hears_input_end and not self.engine_class.keeps_half_open:
            raise ValueError(
                f"{handler.name}.on_input_end may keep half-closed connections open, which engine "
                f"{self.engine_name!r} cannot (a connection's thread ends at the peer's end): use a "
                "loop engine (epoll, pool, asyncio...)"
            )
        if handler.is_async:
            if not self.engine_class.awaits_handlers:
                raise TypeError(
                    f"{handler.name} is an async def: async handlers are awaited on "
                    f"engine='asyncio' or 'uvloop', not {self.engine_name!r} (or write it as a plain def)"
                )
            if datagrams:
                raise ValueError(
                    f"async handlers serve connections, and {', '.join(datagrams)} is datagram-based: "
                    "serve datagrams with a plain def"
                )
        if not handler.may_block:
            return
        if not self.engine_class.supports_blocking:
            if handler.is_blocking:
                fix = "use engine='threads' (or 'pool', 'iterative'), or write it as a function (message, conn) or a Protocol"
            else:
                fix = "use engine='pool' (or 'threads'), or drop @blocking if it never waits"
            raise ValueError(
                f"engine {self.engine_name!r} runs handlers on its event loop and cannot run the "
                f"@blocking handler {handler.name}: {fix}"
            )
        if handler.is_blocking and datagrams:
            raise ValueError(
                f"@blocking handlers need connections, and {', '.join(datagrams)} is datagram-based: "
                "serve datagrams with a function (message, conn) or a Protocol"
            )

    def with_handler(self, handler: Handler) -> ServingPlan:
        """The same plan serving ``handler`` (SIGHUP loaded its module again)."""
        return dataclasses.replace(self, handler=handler)

    def engine(self, listeners: list[Listener], stats: StatsRecorder) -> Engine:
        """The engine that serves ``listeners`` in this process (in a worker, with workers)."""
        engine = self.engine_class(listeners, self.handler, self.codec, self.limits, stats)
        engine.gate.access = self.access
        return engine


def usable_cores() -> int:
    """The cores this process may run on (``workers="auto"``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def worker_count(workers: int | str | None) -> int | None:
    """The number of worker processes ``workers`` asks for (None: no workers)."""
    if workers is None:
        return None
    if workers == "auto":
        return usable_cores()
    if isinstance(workers, str) and workers.isdigit():
        workers = int(workers)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a number of processes (1 or more) or 'auto', not {workers!r}")
    return workers
