"""What a server runs: something that serves its listeners until stopped.

Why a base of its own: an engine (one process serving connections) and the
prefork supervisor (a master whose workers each run an engine) are different
things, but a Server starts, signals and stops both the same way. What they
share is here, and only that: the listeners (released when serving ends), and
a stop that is safe from any thread and from a signal handler. Stopping takes
no lock: :meth:`Runner.stop` lowers the deadline, sets a flag, and writes a
byte to two socketpairs: the *stop* socket is never drained, so it stays
readable and wakes every thread that polls it; the *wake* socket is drained by
the runner's own loop, which other threads also use to nudge it.
"""

from __future__ import annotations

import math
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence

from ..endpoints import Listener
from ..session import Session
from ..stats import StatsRecorder

__all__ = ["Runner"]


class Runner(ABC):
    """Serves a server's listeners until stopped. One runner serves once."""

    def __init__(self, listeners: list[Listener], stats: StatsRecorder) -> None:
        #: the sockets to accept connections (and receive datagrams) on
        self.listeners = [listener for listener in listeners if not listener.endpoint.connected]
        #: adopted connected sockets, each served as a connection from the start
        self.adopted = [listener for listener in listeners if listener.endpoint.connected]
        self._untaken = list(self.adopted)
        self.stats = stats
        self.deadline = math.inf  # when stopping: the moment what is still open is cut
        self.stopping = False
        #: a forced stop (a second Ctrl-C): what is cut was named by whoever forced it
        self.forced = False
        #: handler threads still running when serving ended: cut off at the grace deadline
        self.abandoned = 0
        self._stop_r, self._stop_w = socket.socketpair()
        self._wake_r, self._wake_w = socket.socketpair()
        for sock in (self._stop_r, self._stop_w, self._wake_r, self._wake_w):
            sock.setblocking(False)

    def serve(self) -> None:
        """Serve until stopped and drained; releases the listeners and the runner's own descriptors."""
        try:
            self.run()
        finally:
            self.release()

    @abstractmethod
    def run(self) -> None:
        """The loop: serve and drain until stopped (the deadline included)."""

    def release(self) -> None:
        """Close the listeners, the adopted connections never served, and the wake-up sockets."""
        try:
            self.close_listeners()
            for origin in self._untaken:
                origin.close()
        finally:
            self.close_wakers()

    def close_listeners(self) -> None:
        for listener in self.listeners:
            listener.close()

    def open_connections(self) -> Sequence[Session]:
        """The connections being served now, in this process (for the forced-shutdown report)."""
        return []

    def stop(self, grace: float) -> None:
        """Begin (or hurry) shutdown: what is still open is cut after ``grace`` seconds.

        Safe from any thread and from a signal handler; never blocks.
        """
        deadline = time.monotonic() + max(0.0, grace)
        self.deadline = min(self.deadline, deadline)
        self.stopping = True
        self._nudge(self._stop_w)
        self._nudge(self._wake_w)
        self.stopped()

    def force(self) -> None:
        """Stop now, cutting what is open, for a caller that names what it cuts itself (a
        second Ctrl-C): the grace cut then cuts without a log line of its own. Safe from a
        signal handler."""
        self.forced = True
        self.stop(0)

    def stopped(self) -> None:  # noqa: B027 - a hook; most runners need nothing here
        """stop() was called (from any thread or a signal handler): a hook."""

    def wake(self) -> None:
        """Make the loop run an iteration now (thread-safe)."""
        self._nudge(self._wake_w)

    @staticmethod
    def _nudge(sock: socket.socket) -> None:
        try:
            sock.send(b"\0")
        except OSError:  # full (already pending), or closed after serve() ended
            pass

    def drain_wake(self) -> None:
        """Empty the wake socket (the loop was woken: it looks at what changed)."""
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    @property
    def wakeup_fileno(self) -> int:
        """A descriptor whose write wakes the loop (for signal.set_wakeup_fd)."""
        return self._wake_w.fileno()

    @property
    def stop_fd(self) -> int:
        """A descriptor that becomes readable, and stays so, once stop() was called."""
        return self._stop_r.fileno()

    @property
    def wake_fileno(self) -> int:
        """The descriptor the loop watches to be woken (drained by :meth:`drain_wake`)."""
        return self._wake_r.fileno()

    def own_descriptors(self) -> list[int]:
        """The runner's own descriptors (a forked child must not keep them)."""
        return [sock.fileno() for sock in (self._stop_r, self._stop_w, self._wake_r, self._wake_w)]

    def close_wakers(self) -> None:
        """Release the runner's own descriptors (the end of serve())."""
        for sock in (self._stop_r, self._stop_w, self._wake_r, self._wake_w):
            sock.close()
