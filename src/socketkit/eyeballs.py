"""Happy eyeballs (RFC 8305): connect to the first address of a host that answers.

Why: a host name often has several addresses, IPv6 and IPv4. Tried one after
another, an address that drops packets (a broken IPv6 route, a firewall that
blackholes) costs the whole timeout before the next is tried; asyncio, trio
and Twisted race them instead. So does this: the addresses are interleaved by
family (the first family getaddrinfo gives first, then the other, and so on),
an attempt starts every ``delay`` seconds (250 ms, as RFC 8305 advises) or at
once when the one before fails, and the first to connect wins; the others are
closed. One thread, non-blocking sockets and a selector: no thread per
attempt. :func:`connect_first_async` is the same race on an asyncio loop (a task
per attempt), for :mod:`socketkit.aio`.

The caller translates what this raises (the last attempt's error, or
``TimeoutError`` at the deadline) once, at the socket boundary.
"""

from __future__ import annotations

import asyncio
import errno
import os
import selectors
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["DEFAULT_DELAY", "connect_first", "connect_first_async", "interleave"]

#: seconds before the next address is tried while earlier attempts are still pending
DEFAULT_DELAY = 0.25

AddrInfo = tuple[int, int, int, str, Any]  # what socket.getaddrinfo() lists
_IN_PROGRESS = (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN)


def interleave(infos: Sequence[AddrInfo]) -> list[AddrInfo]:
    """``infos`` in getaddrinfo's order within each family, alternating families, starting
    with the family of the first (RFC 8305 §4)."""
    by_family: dict[int, list[AddrInfo]] = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    queues = list(by_family.values())
    ordered: list[AddrInfo] = []
    while queues:
        for queue in queues:
            ordered.append(queue.pop(0))
        queues = [queue for queue in queues if queue]
    return ordered


def connect_first(
    infos: Sequence[AddrInfo],
    timeout: float | None,
    delay: float = DEFAULT_DELAY,
    prepare: Callable[[socket.socket], None] | None = None,
) -> socket.socket:
    """A blocking socket connected to the first of ``infos`` (interleaved) that connects.

    ``prepare`` runs on each new socket before its connect (socket options, a source
    address to bind). ``timeout`` bounds the whole race (None: no bound).

    Raises:
        TimeoutError: no attempt connected within ``timeout``.
        OSError: every attempt failed: the last one's error.
    """
    if not infos:
        raise OSError(errno.EHOSTUNREACH, "no address to connect to")
    if len(infos) == 1:  # nothing to race: a plain connect (no selector to make per connection)
        return _connect_one(infos[0], timeout, prepare)
    deadline = None if timeout is None else time.monotonic() + timeout
    waiting = interleave(infos)
    pending: dict[socket.socket, Any] = {}
    selector = selectors.DefaultSelector()
    failure: OSError | None = None
    next_start = time.monotonic()
    try:
        while waiting or pending:
            now = time.monotonic()
            if waiting and (now >= next_start or not pending):
                family, kind, proto, _, address = waiting.pop(0)
                try:
                    sock = _start(family, kind, proto, address, prepare)
                except OSError as exc:
                    failure = exc
                    next_start = now  # failed at once: the next one starts now
                    continue
                pending[sock] = address
                selector.register(sock, selectors.EVENT_WRITE, sock)
                next_start = now + delay
                continue
            wait = next_start - now if waiting else None
            if deadline is not None:
                left = deadline - now
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout:g}s")
                wait = left if wait is None else min(wait, left)
            for key, _ in selector.select(wait):
                done: socket.socket = key.data
                selector.unregister(done)
                del pending[done]
                code = done.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code == 0:
                    done.setblocking(True)
                    return done  # (finally closes the others)
                done.close()
                failure = OSError(code, os.strerror(code))  # (ECONNREFUSED: ConnectionRefusedError)
                next_start = time.monotonic()  # a failure starts the next attempt at once
        assert failure is not None
        raise failure
    finally:
        for sock in pending:
            sock.close()
        selector.close()


def _connect_one(
    info: AddrInfo, timeout: float | None, prepare: Callable[[socket.socket], None] | None
) -> socket.socket:
    family, kind, proto, _, address = info
    sock = socket.socket(family, kind, proto)
    try:
        if prepare is not None:
            prepare(sock)
        sock.settimeout(timeout)
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(True)
    return sock


def _start(
    family: int, kind: int, proto: int, address: Any, prepare: Callable[[socket.socket], None] | None
) -> socket.socket:
    """A new non-blocking socket with its connect to ``address`` begun."""
    sock = socket.socket(family, kind, proto)
    try:
        if prepare is not None:
            prepare(sock)
        sock.setblocking(False)
        code = sock.connect_ex(address)
    except BaseException:
        sock.close()
        raise
    if code not in _IN_PROGRESS and code != 0:
        sock.close()
        raise OSError(code, os.strerror(code))
    return sock


async def connect_first_async(
    infos: Sequence[AddrInfo],
    delay: float = DEFAULT_DELAY,
    prepare: Callable[[socket.socket], None] | None = None,
) -> socket.socket:
    """:func:`connect_first` on the running loop: a non-blocking socket connected to the
    first of ``infos`` (interleaved) that connects. The caller bounds it (``wait_for``);
    cancelled, it closes every socket it opened.

    Raises:
        OSError: every attempt failed: the last one's error.
    """
    if not infos:
        raise OSError(errno.EHOSTUNREACH, "no address to connect to")
    loop = asyncio.get_running_loop()
    waiting = interleave(infos)
    attempts: set[asyncio.Task[socket.socket]] = set()
    failure: BaseException | None = None

    async def attempt(info: AddrInfo) -> socket.socket:
        family, kind, proto, _, address = info
        sock = socket.socket(family, kind, proto)
        try:
            if prepare is not None:
                prepare(sock)
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        return sock

    try:
        while waiting or attempts:
            if waiting:
                attempts.add(asyncio.ensure_future(attempt(waiting.pop(0))))
            done, _ = await asyncio.wait(
                attempts, timeout=delay if waiting else None, return_when=asyncio.FIRST_COMPLETED
            )
            attempts -= done
            connected = [task.result() for task in done if task.exception() is None]
            if connected:
                for extra in connected[1:]:  # (two at once: one is kept)
                    extra.close()
                return connected[0]  # (finally closes the others)
            if done:  # a failure starts the next attempt at once
                failure = next(iter(done)).exception()
        assert failure is not None
        raise failure
    finally:
        for task in attempts:
            task.cancel()
        for result in await asyncio.gather(*attempts, return_exceptions=True):
            if isinstance(result, socket.socket):  # connected just as another won
                result.close()
