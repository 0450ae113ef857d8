"""One process's share of a benchmark: a selectors loop over its connections.

Each *slot* is one simulated client with one request in flight. Closed loop: a
slot sends its next request as soon as the reply to the last arrives. Open loop
(``rate``): each slot has a schedule; a request is due at its intended time,
and its latency is measured from that intended time, not from when it could
actually be sent. A server that stalls therefore shows its stall in every
request that should have been sent during it (the coordinated-omission
correction wrk2 made known). In connect mode a request includes opening its
connection, which is closed after the reply.

With TLS each connection carries an ``ssl.SSLObject`` over memory BIOs, the
sans-IO way the server's TLS layer works too: the loop moves ciphertext, the
SSLObject turns it into the workload's plaintext. A new connection resumes the
session of an earlier one where the server offers tickets, as HTTPS clients do;
the result counts handshakes and how many were resumed.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import selectors
import socket
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ProtocolError
from ..tls import client_context
from .config import BenchConfig
from .workload import ReplyParser, Workload, make_workload

__all__ = ["Progress", "Runner", "WorkerResult"]

LOWEST_US = 1
HIGHEST_US = 60_000_000  # latencies are recorded in microseconds, up to a minute
SIGNIFICANT_DIGITS = 3
_PROGRESS_EVERY = 0.25
_RECONNECT_DELAY = 0.01
_RECV_SIZE = 262144


@dataclass
class Progress:
    elapsed: float
    requests: int
    errors: int
    bytes: int


@dataclass
class WorkerResult:
    histogram: str  # HdrHistogram's compressed encoding
    requests: int
    errors: dict[str, int]
    bytes_sent: int
    bytes_received: int
    elapsed: float
    intervals: list[tuple[float, int, int]] = field(default_factory=list)  # (end s, requests, bytes)
    handshakes: int = 0  # TLS handshakes completed
    resumed: int = 0  # of which resumed an earlier session


class _Tls:
    """One connection's TLS state: the SSLObject and its two memory BIOs."""

    __slots__ = ("incoming", "outgoing", "shaking", "ssl")

    def __init__(self, context: ssl.SSLContext, hostname: str | None, session: ssl.SSLSession | None) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.ssl = context.wrap_bio(self.incoming, self.outgoing, server_hostname=hostname, session=session)
        self.shaking = True  # the handshake has not completed


class _Slot:
    __slots__ = ("connecting", "intended", "next_at", "out", "parser", "sent_at", "sock", "tls", "waiting")

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.parser: ReplyParser | None = None
        self.intended = 0.0  # when the request in flight was due
        self.sent_at = 0.0
        self.next_at = 0.0  # open loop: when the next request is due
        self.out = b""  # unsent request bytes
        self.waiting = False  # a request is in flight
        self.connecting = False  # a non-blocking connect has not completed yet
        self.tls: _Tls | None = None


class Runner:
    """Runs ``config`` (one process's share) and returns its WorkerResult."""

    def __init__(self, config: BenchConfig, progress: Callable[[Progress], None] | None = None) -> None:
        from hdrh.histogram import HdrHistogram  # noqa: PLC0415 - a bench-time dependency

        self.config = config
        self.progress = progress
        endpoint = config.endpoint
        self.workload: Workload = make_workload(
            config.mode, config.codec, config.size, endpoint.host or "localhost", config.path, config.deflate
        )
        self.per_connection = config.mode == "connect"
        if endpoint.is_unix:
            self.family: int = socket.AF_UNIX
            self.address: Any = endpoint.path
        else:
            family, _, _, _, sockaddr = socket.getaddrinfo(
                endpoint.host or "localhost", endpoint.port, type=socket.SOCK_STREAM
            )[0]
            self.family, self.address = family, sockaddr
        self.histogram = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        self.selector = selectors.DefaultSelector()
        self.errors: Counter[str] = Counter()
        self.requests = 0
        self.issued = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.timers: list[tuple[float, int, _Slot]] = []
        self.sequence = itertools.count()
        self.interval = None if config.rate is None else config.connections / config.rate
        self.tls_context = (
            client_context(config.tls_ca, insecure=config.insecure) if config.uses_tls else None
        )
        #: the name the server's certificate must carry (None on unix sockets: nothing to check)
        self.tls_hostname = None if endpoint.is_unix else endpoint.host or "localhost"
        if self.tls_context is not None and self.tls_hostname is None:
            self.tls_context.check_hostname = False
        self.tls_session: ssl.SSLSession | None = None  # the latest, for the next connection
        self.handshakes = 0
        self.resumed = 0

    # -- the loop ----------------------------------------------------------------------------

    def run(self) -> WorkerResult:
        config = self.config
        start = self.now = time.monotonic()
        deadline = start + config.duration
        slots = [_Slot() for _ in range(config.connections)]
        for n, slot in enumerate(slots):
            if self.interval is not None:  # spread the schedules over one interval
                slot.next_at = start + self.interval * n / len(slots)
            self._begin(slot)
        next_progress = start + _PROGRESS_EVERY
        intervals: list[tuple[float, int, int]] = []
        interval_end, interval_requests, interval_bytes = start + 1.0, 0, 0
        try:
            while self.now < deadline:
                if config.requests is not None and self.requests >= config.requests:
                    break
                wait = min(deadline, next_progress) - self.now
                if self.timers:
                    wait = min(wait, self.timers[0][0] - self.now)
                for key, mask in self.selector.select(max(0.0, wait)):
                    self.now = time.monotonic()
                    self._event(key.data, mask)
                self.now = time.monotonic()
                while self.timers and self.timers[0][0] <= self.now:
                    _, _, slot = heapq.heappop(self.timers)
                    self._begin(slot)
                if self.now >= next_progress:
                    next_progress = self.now + _PROGRESS_EVERY
                    self._expire(slots)
                    if self.progress is not None:
                        self.progress(self._snapshot(start))
                if self.now >= interval_end:
                    moved = self.bytes_sent + self.bytes_received
                    intervals.append(
                        (
                            round(interval_end - start, 3),
                            self.requests - interval_requests,
                            moved - interval_bytes,
                        )
                    )
                    interval_end += 1.0
                    interval_requests, interval_bytes = self.requests, moved
        finally:
            for slot in slots:
                self._close(slot)
            self.selector.close()
        elapsed = time.monotonic() - start
        moved = self.bytes_sent + self.bytes_received
        if self.requests > interval_requests or moved > interval_bytes:  # the last, partial interval
            intervals.append((round(elapsed, 3), self.requests - interval_requests, moved - interval_bytes))
        if self.progress is not None:
            self.progress(self._snapshot(start))
        return WorkerResult(
            histogram=self.histogram.encode().decode("ascii"),
            requests=self.requests,
            errors=dict(self.errors),
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received,
            elapsed=elapsed,
            intervals=intervals,
            handshakes=self.handshakes,
            resumed=self.resumed,
        )

    def _snapshot(self, start: float) -> Progress:
        return Progress(
            self.now - start, self.requests, sum(self.errors.values()), self.bytes_sent + self.bytes_received
        )

    # -- one slot ------------------------------------------------------------------------------

    def _begin(self, slot: _Slot) -> None:
        """Issue the slot's next request if it is due (opening a connection if needed)."""
        if self.config.requests is not None and self.issued >= self.config.requests:
            return
        if self.interval is not None:
            if self.now < slot.next_at:
                heapq.heappush(self.timers, (slot.next_at, next(self.sequence), slot))
                return
            slot.intended = slot.next_at
            slot.next_at += self.interval
        else:
            slot.intended = self.now
        self.issued += 1
        slot.waiting = True
        if slot.sock is None:
            self._open(slot)
        else:
            self._send(slot)

    def _open(self, slot: _Slot) -> None:
        sock = socket.socket(self.family, socket.SOCK_STREAM)
        sock.setblocking(False)
        if self.family != socket.AF_UNIX:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex(self.address)
        if code not in (0, errno.EINPROGRESS, errno.EAGAIN):
            sock.close()
            self._fail(slot, _connect_error(code), reconnect=True)
            return
        slot.sock = sock
        slot.parser = self.workload.parser()
        slot.sent_at = self.now
        slot.connecting = True
        if self.tls_context is None:
            slot.out = self.workload.first()
        else:  # the request goes once the handshake is done
            slot.out = b""
            slot.tls = _Tls(self.tls_context, self.tls_hostname, self.tls_session)
        self.selector.register(sock, selectors.EVENT_WRITE, slot)

    def _send(self, slot: _Slot) -> None:
        assert slot.sock is not None
        slot.sent_at = self.now
        if slot.tls is None:
            slot.out = self.workload.request
        else:
            slot.tls.ssl.write(self.workload.request)
            slot.out = slot.tls.outgoing.read()
        self._write(slot)

    def _handshake(self, slot: _Slot, tls: _Tls) -> bool:
        """Take the handshake a step on; False if it failed (the slot is closed)."""
        try:
            tls.ssl.do_handshake()
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as exc:
            self._fail(slot, f"tls: {exc.reason or exc.strerror or 'handshake failed'}", reconnect=True)
            return False
        else:
            tls.shaking = False
            self.handshakes += 1
            if tls.ssl.session_reused:
                self.resumed += 1
            tls.ssl.write(self.workload.first())
        slot.out += tls.outgoing.read()
        return True

    def _write(self, slot: _Slot) -> None:
        assert slot.sock is not None
        try:
            sent = slot.sock.send(slot.out)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._fail(
                slot, "reset" if exc.errno in (errno.ECONNRESET, errno.EPIPE) else "send", reconnect=True
            )
            return
        self.bytes_sent += sent
        slot.out = slot.out[sent:]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if slot.out else 0)
        self.selector.modify(slot.sock, events, slot)

    def _event(self, slot: _Slot, mask: int) -> None:
        sock = slot.sock
        if sock is None:
            return
        if mask & selectors.EVENT_WRITE:
            if slot.connecting:
                slot.connecting = False
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if error:
                    self._fail(slot, _connect_error(error), reconnect=True)
                    return
                if slot.tls is not None and not self._handshake(slot, slot.tls):
                    return
            self._write(slot)
            if slot.sock is None:
                return
        if mask & selectors.EVENT_READ:
            self._read(slot)

    def _read(self, slot: _Slot) -> None:
        assert slot.sock is not None and slot.parser is not None
        try:
            data = slot.sock.recv(_RECV_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(
                slot,
                "reset" if exc.errno == errno.ECONNRESET else _connect_error(exc.errno or 0),
                reconnect=True,
            )
            return
        if not data:
            self._fail(slot, "closed by server", reconnect=True)
            return
        self.bytes_received += len(data)
        if slot.tls is not None:
            data = self._decrypt(slot, slot.tls, data)
            if not data:
                return
        try:
            statuses = slot.parser.feed(data)
        except ProtocolError:
            self._fail(slot, "bad reply", reconnect=True)
            return
        if not statuses:
            return
        if len(statuses) > 1 or not slot.waiting:
            self._fail(slot, "unexpected reply", reconnect=True)
            return
        latency_us = int((self.now - slot.intended) * 1_000_000)
        self.histogram.record_value(min(max(latency_us, LOWEST_US), HIGHEST_US))
        self.requests += 1
        if statuses[0] >= 300:
            self.errors[f"http {statuses[0]}"] += 1
        slot.waiting = False
        if self.per_connection:
            self._close(slot)
        self._begin(slot)

    def _decrypt(self, slot: _Slot, tls: _Tls, data: bytes) -> bytes:
        """The plaintext in ``data`` (empty while the handshake goes on, or on failure)."""
        tls.incoming.write(data)
        if tls.shaking:
            if not self._handshake(slot, tls):
                return b""
            if slot.out:
                self._write(slot)  # the handshake's next flight, or the first request
            if tls.shaking or slot.sock is None:
                return b""
        plaintext = bytearray()
        try:
            while chunk := tls.ssl.read(_RECV_SIZE):
                plaintext += chunk
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self._fail(slot, "closed by server", reconnect=True)
            return b""
        except ssl.SSLError as exc:
            self._fail(slot, f"tls: {exc.reason or exc.strerror}", reconnect=True)
            return b""
        return bytes(plaintext)

    def _fail(self, slot: _Slot, kind: str, reconnect: bool) -> None:
        self.errors[kind] += 1
        if slot.waiting:
            self.issued -= 1  # the failed request is tried again, within the same budget
        self._close(slot)
        if reconnect:  # after a short pause, so a refusing server does not make us spin
            slot.next_at = max(slot.next_at, self.now + _RECONNECT_DELAY)
            heapq.heappush(self.timers, (self.now + _RECONNECT_DELAY, next(self.sequence), slot))

    def _close(self, slot: _Slot) -> None:
        if slot.tls is not None:
            if not slot.tls.shaking and slot.tls.ssl.session is not None:
                self.tls_session = slot.tls.ssl.session  # the next connection resumes it
            slot.tls = None
        sock = slot.sock
        if sock is not None:
            try:
                self.selector.unregister(sock)
            except (KeyError, ValueError):
                pass
            sock.close()
        slot.sock = None
        slot.waiting = False
        slot.connecting = False

    def _expire(self, slots: list[_Slot]) -> None:
        limit = self.config.timeout
        for slot in slots:
            if slot.waiting and slot.sock is not None and self.now - slot.sent_at > limit:
                self._fail(slot, "timeout", reconnect=True)


def _connect_error(code: int) -> str:
    if code == errno.ECONNREFUSED:
        return "connection refused"
    if code in (errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    if code == errno.ECONNRESET:
        return "reset"
    return f"connect failed ({errno.errorcode.get(code, code)})"
