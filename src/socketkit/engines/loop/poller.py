"""Readiness pollers for the reactor: epoll, poll and select behind one small interface.

Why not the ``selectors`` module: its ``select()`` looks up a SelectorKey and
builds a ``(key, mask)`` tuple for every ready descriptor, and it keeps a
SelectorKey namedtuple per registration: time on the hot path and memory per
idle connection. The reactor already maps descriptors to their handlers, so
these pollers hand it bare ``(fd, mask)`` pairs in poll's bits, which epoll
shares on Linux: ``READ`` (POLLIN), ``WRITE`` (POLLOUT) and ``ERROR``
(POLLERR, POLLHUP, POLLNVAL), the last reported whatever was asked for.

A descriptor about to be closed is ``forget``-ed: epoll drops a closed
descriptor by itself, so that costs it no system call.
"""

from __future__ import annotations

import math
import select
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

__all__ = ["ERROR", "READ", "WRITE", "EpollPoller", "PollPoller", "Poller", "SelectPoller", "poller_class"]

READ = select.POLLIN
WRITE = select.POLLOUT
ERROR = select.POLLERR | select.POLLHUP | select.POLLNVAL
_EXCLUSIVE = getattr(select, "EPOLLEXCLUSIVE", 0)  # Linux 4.5+: no thundering herd on shared listeners


class Poller(ABC):
    """Watches descriptors for READ and WRITE readiness."""

    name: ClassVar[str]

    @abstractmethod
    def register(self, fd: int, events: int) -> None:
        """Watch ``fd``. ValueError if this poller cannot watch it."""

    def register_listener(self, fd: int) -> None:
        """Watch a listening socket for connections; other processes (prefork workers) may
        watch the same one, and epoll then wakes one of them per connection, not all."""
        self.register(fd, READ)

    @abstractmethod
    def modify(self, fd: int, events: int) -> None:
        """Change what ``fd`` is watched for."""

    @abstractmethod
    def unregister(self, fd: int) -> None:
        """Stop watching ``fd``, which stays open."""

    def forget(self, fd: int) -> None:
        """Stop watching ``fd``, which the caller closes next."""
        self.unregister(fd)

    @abstractmethod
    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        """Wait up to ``timeout`` seconds (None: forever); the ready ``(fd, mask)`` pairs."""

    @property
    def wait(self) -> Callable[[float | None], list[tuple[int, int]]]:
        """:meth:`poll` as the loop calls it: the kernel's own call where it takes the same
        arguments (epoll), so a loop iteration makes one call to wait, not two."""
        return self.poll

    def close(self) -> None:  # noqa: B027 - only some pollers hold a resource
        """Release the poller's own resources."""


class _KernelPoller(Poller):
    """epoll and poll: the select module's objects, with the interface above."""

    def __init__(self, impl: select.epoll | select.poll) -> None:
        self._impl = impl

    def register(self, fd: int, events: int) -> None:
        self._impl.register(fd, events)

    def modify(self, fd: int, events: int) -> None:
        self._impl.modify(fd, events)

    def unregister(self, fd: int) -> None:
        self._impl.unregister(fd)


class EpollPoller(_KernelPoller):
    name: ClassVar[str] = "epoll"

    def __init__(self) -> None:
        self._epoll = select.epoll()
        super().__init__(self._epoll)

    def forget(self, fd: int) -> None:
        pass  # closing the descriptor removes it from the epoll set

    def register_listener(self, fd: int) -> None:
        self._epoll.register(fd, READ | _EXCLUSIVE)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        return self._epoll.poll(-1 if timeout is None else timeout)

    @property
    def wait(self) -> Callable[[float | None], list[tuple[int, int]]]:
        return self._epoll.poll  # (None waits for ever, as poll() above says)

    def close(self) -> None:
        self._epoll.close()


class PollPoller(_KernelPoller):
    name: ClassVar[str] = "poll"

    def __init__(self) -> None:
        self._poll = select.poll()
        super().__init__(self._poll)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        return self._poll.poll(None if timeout is None else math.ceil(timeout * 1000))


class SelectPoller(Poller):
    """select(2): portable, and limited to descriptors below FD_SETSIZE (1024 on Linux)."""

    name: ClassVar[str] = "select"

    def __init__(self) -> None:
        self._readers: set[int] = set()
        self._writers: set[int] = set()

    def register(self, fd: int, events: int) -> None:
        select.select([fd], [], [], 0)  # ValueError for a descriptor select cannot watch
        self.modify(fd, events)

    def modify(self, fd: int, events: int) -> None:
        for watched, bit in ((self._readers, READ), (self._writers, WRITE)):
            if events & bit:
                watched.add(fd)
            else:
                watched.discard(fd)

    def unregister(self, fd: int) -> None:
        self._readers.discard(fd)
        self._writers.discard(fd)

    def poll(self, timeout: float | None) -> list[tuple[int, int]]:
        readable, writable, _ = select.select(self._readers, self._writers, [], timeout)
        ready = dict.fromkeys(readable, READ)
        for fd in writable:
            ready[fd] = ready.get(fd, 0) | WRITE
        return list(ready.items())


_POLLERS: dict[str, str] = {"select": "SelectPoller", "poll": "PollPoller", "epoll": "EpollPoller"}


def poller_class(name: str) -> type[Poller]:
    """The poller for ``name`` ("auto": the best this system has); ValueError when it lacks it."""
    if name == "auto":
        for candidate, attr in (("epoll", "epoll"), ("poll", "poll")):
            if hasattr(select, attr):
                return poller_class(candidate)
        return SelectPoller
    if not hasattr(select, name):
        raise ValueError(
            f"engine {name!r} is not available on this system: use 'reactor' (the best available)"
        )
    cls: type[Poller] = globals()[_POLLERS[name]]
    return cls
