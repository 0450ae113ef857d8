"""The engine template: what every engine shares, and the one method each writes.

Why a template: the rules of DESIGN §4 must hold identically on every engine,
so what can be shared is written once: the connection's life is the
:class:`~socketkit.session.Session`; accepting under the limits is
:class:`~socketkit.engines.common.accept.AcceptGate`; datagrams are answered by
``common/datagrams``; close reasons are reported by :mod:`socketkit.closing`. An
engine writes :meth:`Engine.run`, its own way to wait (a poller, a thread per
connection), and :meth:`Engine.serve` wraps it in the setup and teardown
every engine needs.

The stop sequence is written here once (:meth:`Engine.begin_stop` and
:meth:`Engine.cut_at_grace`): stop accepting, answer what arrived, close the
listeners, end idle connections, cut what is left at the grace deadline. Each
family gives it primitives (how it stops accepting, takes a backlog, ends idle
connections, cuts) and drives it with its own waiting (a loop's timeout or
timer, a thread's select), never by polling.

Stopping is signal-safe (:class:`~.runner.Runner`, which an engine is, as the
prefork supervisor is): ``stop()`` takes no lock, and wakes the engine's loop.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar

from ..closing import log, peer_list
from ..codecs import Codec
from ..endpoints import Listener
from ..errors import LimitExceeded
from ..handlers import Dispatch, Handler
from ..limits import Limits
from ..session import Session
from ..stats import StatsRecorder
from .common.accept import AcceptGate
from .runner import Runner

__all__ = ["BURST", "Engine", "current", "log"]

#: ``current.engine`` is the engine whose thread this is (serving loop,
#: connection or datagram thread), so Server.stop() called from a handler
#: knows not to wait for itself.
current = threading.local()

#: what a loop takes per readiness event of one socket (connections accepted, datagrams
#: answered, reads while stopping), so one socket cannot starve the others
BURST = 64


class Engine(Runner):
    """Serves a server's listeners in this process until stopped. One engine serves once."""

    name: ClassVar[str] = "engine"
    #: whether @blocking handlers can run on this engine.
    supports_blocking: ClassVar[bool] = False
    #: whether one handler that never returns stops the whole engine (its loop runs every
    #: handler): a prefork worker's heartbeat then comes from that loop, so a stuck loop
    #: is noticed; thread engines' loops only accept, and their threads may be busy long.
    loop_runs_handlers: ClassVar[bool] = False
    #: whether ``async def`` handlers are awaited here (the asyncio family)
    awaits_handlers: ClassVar[bool] = False
    #: whether a Protocol's on_input_end may keep a half-closed connection open (a loop
    #: engine: the connection waits on the loop for the handler's close)
    keeps_half_open: ClassVar[bool] = True

    @classmethod
    def check_available(cls) -> None:
        """Raises ValueError, saying what is missing, when this system cannot run the engine
        (its poller, an optional package); chosen by name, it fails then, not when serving."""
        return  # an engine of the standard library runs everywhere

    def __init__(
        self,
        listeners: list[Listener],
        handler: Handler,
        codec: Codec,
        limits: Limits,
        stats: StatsRecorder,
    ) -> None:
        super().__init__(listeners, stats)
        #: whether serving ends by itself, once the adopted connections have: nothing listens
        self.ends_with_adopted = bool(self.adopted) and not self.listeners
        self.handler = handler
        self.codec = codec
        self.limits = limits
        self.gate = AcceptGate(limits, stats)
        #: whether stopping serves what waits in the listeners' backlogs first; not for a
        #: prefork worker that retires while the others go on accepting from the same sockets
        self.drain_backlog = True
        self._calls: deque[Callable[[], None]] = deque()

    def dispatch_for(self, session: Session) -> Dispatch:
        """What calls the handler for ``session``: the handler's own dispatch, on an engine
        that calls event handlers from one thread."""
        return self.handler.dispatch(session)

    # -- the stop sequence, written once; each family gives its primitives -----------------
    #
    # stop accepting -> answer what arrived -> flush -> end idle -> cut at grace -> report.
    # An engine calls begin_stop() once, on its own thread, when it sees ``stopping``; its
    # connections flush and end as they become idle, by its own events (no polling); at the
    # deadline it calls cut_at_grace(); the connections' close sequence reports each one.

    def begin_stop(self) -> None:
        """Stop accepting; answer what arrived before the stop (the connections waiting in
        the backlogs, the datagrams queued), unless a retiring prefork worker leaves them to
        the others; close the listeners; end the connections that are idle."""
        self.stop_accepting()
        for listener in self.listeners if self.drain_backlog else ():
            if listener.endpoint.is_stream:
                self.take_backlog(listener)
            else:
                self.answer_queued(listener)
        self.stop_datagrams()
        self.close_listeners()
        self.end_idle()

    def cut_at_grace(self) -> None:
        """The grace deadline passed: what is still open is named in one log line and cut."""
        left = self.open_connections()
        if left and not self.forced:  # (forced: the forcing line named them already)
            log.warning("grace period over: cutting %s", peer_list(left))
        self.cut_all()

    def stop_accepting(self) -> None:
        """No more readiness to accept is waited for."""

    def take_backlog(self, listener: Listener) -> None:
        """Serve the connections waiting in ``listener``'s backlog (they came before the stop)."""

    def answer_queued(self, listener: Listener) -> None:
        """Answer the datagrams queued on ``listener`` (they came before the stop)."""

    def stop_datagrams(self) -> None:
        """No more datagrams are read."""

    def end_idle(self) -> None:
        """End the connections that are between messages with nothing unsent (a new one
        waits for its first request until Session.fresh_until)."""

    def cut_all(self) -> None:
        """End every connection's I/O now (the grace deadline)."""

    def call_soon_threadsafe(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the engine's loop thread soon. Safe from any thread."""
        self._calls.append(fn)
        self.wake()

    def run_calls(self) -> None:
        """Run the calls queued so far (the loop calls this after each wake-up)."""
        calls = self._calls
        for _ in range(len(calls)):
            fn = calls.popleft()
            try:
                fn()
            except Exception as exc:
                log.error("call from another thread raised %s: %s", type(exc).__name__, exc, exc_info=exc)

    def accept_waiting(
        self,
        listener: Listener,
        open_now: Callable[[], int],
        add: Callable[[socket.socket, Any, Listener], None],
        most: int = BURST,
    ) -> bool:
        """Accept up to ``most`` connections waiting on ``listener``, each given to ``add``.

        False when accepting must pause: ``max_connections`` are open (``open_now()``), or
        descriptors ran out (:attr:`gate` is paused); True when none is left waiting or
        ``most`` were taken (a burst, so one listener cannot starve the rest of a loop).
        """
        for _ in range(most):
            if open_now() >= self.limits.max_connections:
                return False
            accepted = self.gate.accept(listener)
            if accepted is None:
                return not self.gate.paused
            add(accepted[0], accepted[1], listener)
        return True

    def take_adopted(self) -> list[tuple[socket.socket, Any, Listener]]:
        """The adopted connections to serve now (socket, peer, origin), counted against
        max_connections_per_ip as accepted ones are (one over the limit is closed). From
        here each socket is its connection's to close; serve() closes those never taken."""
        taken = []
        for origin in self._untaken:
            if origin.counts_per_ip and self.gate.admit(origin.peer, origin.url) is not None:
                origin.close()
                continue
            taken.append((origin.sock, origin.peer, origin))
        self._untaken = []
        return taken

    # -- what sessions and datagram sockets call ---------------------------------------

    def connection_finished(self, session: Session) -> None:
        self.stats.untrack(session)
        if session.per_ip_counted:
            self.gate.release(session.peer)

    def admit(self, peer: Any, listener: str) -> LimitExceeded | None:
        """A peer learned after accept (a PROXY header) counted against the per-IP limit."""
        return self.gate.admit(peer, listener)
