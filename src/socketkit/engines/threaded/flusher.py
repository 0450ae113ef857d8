"""The outbox flusher: lets thread engines send to a connection without blocking.

Why: on a thread engine, a handler that sends to *another* connection (a
broker, a chat) must not be blocked by that peer's slow reading. Such a send
hands the kernel what it takes at once and leaves the rest in the target's
bounded outbox; this one thread per engine waits for those sockets to become
writable and flushes them. A peer whose outbox passes ``write_buffer_high`` is
cut off by the sender (see ThreadedTransport), so memory stays bounded.
"""

from __future__ import annotations

import select
import socket
import threading
from typing import Protocol

from ...closing import log
from ...errors import SocketkitError


class Flushable(Protocol):
    """A connection with output queued by other threads (see ThreadedTransport)."""

    @property
    def peer_url(self) -> str: ...

    def flush_outbox(self) -> bool:
        """Send what the kernel takes now; True once nothing is left."""
        ...


__all__ = ["Flushable", "OutboxFlusher"]


class OutboxFlusher:
    """One thread that flushes the outboxes of connections it watches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: dict[int, Flushable] = {}
        self._poll = select.poll()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._poll.register(self._wake_r, select.POLLIN)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="socketkit-flusher", daemon=True)
        self._thread.start()

    def watch(self, conn: Flushable, fd: int) -> None:
        with self._lock:
            if self._closed:
                return
            self._watched[fd] = conn
            self._poll.register(fd, select.POLLOUT)
        self._wake()

    def unwatch(self, fd: int) -> None:
        """Forget ``fd``; call before closing its socket (its number may be reused)."""
        with self._lock:
            if self._watched.pop(fd, None) is None:
                return
            self._poll.unregister(fd)
        self._wake()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._wake()
        self._thread.join(5)
        self._wake_r.close()
        self._wake_w.close()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass

    def _run(self) -> None:
        while True:
            events = self._poll.poll()
            with self._lock:
                if self._closed:
                    return
                ready = [(fd, self._watched.get(fd)) for fd, _ in events]
            for fd, conn in ready:
                if fd == self._wake_r.fileno():
                    try:
                        self._wake_r.recv(4096)
                    except OSError:
                        pass
                    continue
                if conn is None:
                    continue
                try:
                    done = conn.flush_outbox()
                except SocketkitError as exc:
                    log.debug("%s: flushing queued output failed: %s", conn.peer_url, exc)
                    done = True
                if done:
                    self.unwatch(fd)
