"""The attacks and faults, each against a real server, with a figure and a pass criterion.

Why these: they are the hostile-peer battery of issue 23, the ones a server on
a network meets (slowloris, floods, oversize and expanding input, peers that
vanish or never read, descriptors running out) and the faults of its own life
(a stop under load, a worker killed). Each case says what it threw, what it
measured and what passing means; the sizes come from :class:`Size` (``quick``
for CI, ``full`` by hand). Loopback only, every wait bounded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import random
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from socketkit.codecs import codec_by_name
from socketkit.errors import ProtocolError

from .harness import (
    COMPAT_LAUNCHER,
    GET,
    Result,
    ServerProcess,
    closed_by_peer,
    connect,
    echo_round_trip,
    http_get,
    many,
    percentile,
    wait_for,
)


@dataclasses.dataclass(frozen=True)
class Size:
    """How much each case throws (quick: CI, under 90 s in all; full: by hand)."""

    name: str
    engines: tuple[str, ...]  # the engines the per-engine cases run on
    slowloris: int  # connections dripping a byte every half second
    read_timeout: float  # what the server cuts them at
    idle: int  # idle connections held
    abrupt: int  # connect, half a message, reset
    oversize: int  # bytes sent without ending a frame, per codec
    fanout_lines: int  # lines a broker relays to its members
    stop_clients: int  # clients pipelining when the stop comes
    udp: int  # datagrams in the flood
    fuzz: int  # inputs per codec
    tls_flood: int  # half-open and vanishing TLS peers, each
    load_seconds: float  # prefork load, around the kill and the SIGHUP
    compat_threads: int  # the socketserver drop-in's max_threads (twice as many trickle)
    compat_shed_after: float  # ... and its shed_after (its default in the full form)


QUICK = Size(
    name="quick",
    engines=("epoll", "threads", "asyncio"),
    slowloris=200,
    read_timeout=2.0,
    idle=1000,
    abrupt=300,
    oversize=4 << 20,
    fanout_lines=5000,
    stop_clients=10,
    udp=20000,
    fuzz=3000,
    tls_flood=100,
    load_seconds=2.0,
    compat_threads=100,
    compat_shed_after=3.0,
)
FULL = Size(
    name="full",
    engines=("epoll", "threads", "asyncio"),
    slowloris=1000,
    read_timeout=5.0,
    idle=10000,
    abrupt=10000,
    oversize=64 << 20,
    fanout_lines=100000,
    stop_clients=40,
    udp=1000000,
    fuzz=100000,
    tls_flood=500,
    load_seconds=5.0,
    compat_threads=1024,
    compat_shed_after=10.0,
)


def _timed(case: Callable[..., Result]) -> Callable[..., Result]:
    def run(*args: object) -> Result:
        started = time.monotonic()
        result = case(*args)
        result.seconds = time.monotonic() - started
        return result

    run.__name__ = case.__name__
    return run


# -- slow and idle peers -------------------------------------------------------------------


@_timed
def slowloris(size: Size, engine: str) -> Result:
    """Connections that send a request head a byte at a time: each is cut at read_timeout,
    and a normal client is served meanwhile."""
    count, timeout = size.slowloris, size.read_timeout
    limits = {"read_timeout": timeout, "max_connections": count + 64, "max_connections_per_ip": count + 64}
    latencies: list[float] = []
    failures: list[str] = []
    with ServerProcess("hello", engine=engine, limits=limits) as server, many(count) as attackers:
        for _ in range(count):
            sock = connect(server.address)
            sock.sendall(b"GET / HTTP/1.1\r\n")
            attackers.append(sock)
        started = time.monotonic()
        cut_at: dict[int, float] = {}
        done = threading.Event()

        def normal() -> None:
            while not done.is_set():
                begun = time.perf_counter()
                try:
                    with connect(server.address) as sock:
                        http_get(sock)
                except OSError as exc:
                    failures.append(str(exc))
                latencies.append(time.perf_counter() - begun)
                done.wait(0.05)

        client = threading.Thread(target=normal)
        client.start()
        try:
            while len(cut_at) < count and time.monotonic() - started < timeout + 3:
                for index, sock in enumerate(attackers):
                    if index in cut_at:
                        continue
                    try:
                        sock.send(b"X")
                        ended = closed_by_peer(sock)
                    except OSError:
                        ended = True
                    if ended:
                        cut_at[index] = time.monotonic() - started
                time.sleep(0.5)
        finally:
            done.set()
            client.join()
    last = max(cut_at.values(), default=float("inf"))
    p99 = percentile(latencies, 0.99)
    passed = len(cut_at) == count and last <= timeout + 2 and not failures and p99 < 0.5
    return Result(
        f"slowloris ({engine})",
        f"{count} connections, a byte every 0.5 s; read_timeout {timeout:g} s",
        f"{len(cut_at)} of {count} cut, the last at {last:.1f} s; normal client: "
        f"{len(latencies)} requests, {len(failures)} failed, p99 {p99 * 1000:.1f} ms",
        passed,
        "every one cut by read_timeout + 2 s; the normal client never fails, p99 < 500 ms",
    )


@_timed
def compat_slowloris(size: Size) -> Result:
    """The socketserver drop-in (ThreadingTCPServer, bounded) against twice as many trickling
    clients as it has threads: a newcomer is served once they are shed, not after them."""
    threads, after = size.compat_threads, size.compat_shed_after
    with (
        ServerProcess("compat", launcher=COMPAT_LAUNCHER, max_threads=threads, shed_after=after) as server,
        many(2 * threads) as drippers,
    ):
        for _ in range(2 * threads):
            sock = connect(server.address)
            sock.sendall(b"x")
            drippers.append(sock)
        started = time.monotonic()
        served_after = None
        shed = 0
        while time.monotonic() - started < 30 and served_after is None:
            for sock in drippers:
                with contextlib.suppress(OSError):
                    sock.send(b"x")
            try:
                echo_round_trip(server.address, timeout=1.0)
                served_after = time.monotonic() - started
            except OSError:
                pass
        for sock in drippers:
            shed += closed_by_peer(sock) or _input_ended(sock)
    return Result(
        "slowloris on the socketserver drop-in",
        f"{2 * threads} clients sending a byte a second to a ThreadingTCPServer of {threads} threads; "
        f"shed_after {after:g} s",
        f"a newcomer served after {served_after:.1f} s; {shed} trickling clients shed"
        if served_after is not None
        else "a newcomer not served within 30 s",
        served_after is not None and served_after < 2 * after + 5,
        "a newcomer served within two rounds of shedding (the clients queued before it get the "
        "threads first): 2 x shed_after + 5 s",
    )


def _input_ended(sock: socket.socket) -> bool:
    """Whether the server ended reading from ``sock`` (a shed client's echo of what it had)."""
    try:
        return bool(sock.recv(1 << 16, socket.MSG_DONTWAIT))
    except OSError:
        return False


@_timed
def idle_connections(size: Size, engine: str) -> Result:
    """Idle connections: the server's memory for each (its resident set, before and after)."""
    count = size.idle
    limits = {"max_connections": count + 64, "max_connections_per_ip": count + 64}
    with ServerProcess("echo", engine=engine, limits=limits) as server, many(count) as socks:
        base_fds = server.fds()  # (before the warm-up, whose connection may still be closing)
        echo_round_trip(server.address)  # warmed up: code paths and buffers touched once
        base_rss = server.rss_kb()
        for _ in range(count):
            socks.append(connect(server.address))
        held = wait_for(lambda: server.fds() >= base_fds + count, 30)
        grown = server.rss_kb() - base_rss
        served = echo_round_trip(server.address)
    per = grown / count
    # a thread's stack pages; asyncio's own transport objects (a bare asyncio protocol server
    # takes 2.8 KiB here, README); the reactor's own
    bound = {"threads": 32.0, "iterative": 32.0, "asyncio": 4.0, "uvloop": 4.0}.get(engine, 2.0)
    return Result(
        f"idle connections ({engine})",
        f"{count:,} idle connections",
        f"{per:.2f} KiB of resident memory each; a new client answered in {served * 1000:.1f} ms",
        held and per <= bound,
        f"all held, at most {bound:g} KiB each",
    )


@_timed
def abrupt_peers(size: Size, engine: str) -> Result:
    """Peers that send half a message and reset: nothing of theirs stays open."""
    with ServerProcess("echo", engine=engine) as server:
        echo_round_trip(server.address)
        base = server.fds()
        for _ in range(size.abrupt):
            sock = connect(server.address)
            sock.sendall(b"half a line")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # a reset
        back = wait_for(lambda: server.fds() <= base, 10)
        after = server.fds()
        echo_round_trip(server.address)
    return Result(
        f"abrupt peers ({engine})",
        f"{size.abrupt:,} connect, half a line, reset",
        f"descriptors {base} before, {after} after",
        back,
        "descriptors back to where they were within 10 s; a new client served",
    )


# -- input that is too big, or grows when decoded ------------------------------------------


def _feed_until_closed(
    address: tuple[str, int], first: bytes, filler: bytes, budget: int
) -> tuple[bool, int]:
    """Send ``first`` then ``filler`` until ``budget`` bytes: whether the server closed the
    connection on its way, and the bytes sent."""
    sent = 0
    with connect(address) as sock:
        sock.settimeout(5)
        try:
            sock.sendall(first)
            sent = len(first)
            while sent < budget:
                sock.sendall(filler)
                sent += len(filler)
        except OSError:
            return True, sent
        return wait_for(lambda: closed_by_peer(sock), 5), sent


@_timed
def oversize(size: Size, codec: str) -> Result:
    """A frame that never ends (or announces 1 GiB): refused at max_message_size, the
    server's memory not grown by what was sent."""
    max_size = 1 << 20
    first, filler = {
        "lines": (b"", b"x" * 65536),
        "length": (struct.pack(">I", 1 << 30), b"x" * 65536),
        "json": (b'"', b"x" * 65536),
        "http": (b"GET / HTTP/1.1\r\nX-Long: ", b"x" * 65536),
    }[codec]
    handler = "hello" if codec == "http" else "echo"
    with ServerProcess(
        handler, codec=None if codec == "http" else codec, limits={"max_message_size": max_size}
    ) as server:
        base = server.rss_kb()
        peak = [base]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                peak[0] = max(peak[0], server.rss_kb())
                sampling.wait(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            closed, sent = _feed_until_closed(server.address, first, filler, size.oversize)
        finally:
            sampling.set()
            sampler.join()
        alive = server.alive
    grown = (peak[0] - base) / 1024
    return Result(
        f"oversize input ({codec})",
        f"a frame that never ends, {size.oversize >> 20} MiB offered; max_message_size 1 MiB",
        f"refused ({sent / (1 << 20):.1f} MiB sent before the close was seen); the server grew {grown:.1f} MiB at most",
        closed and alive and grown < 16,
        "the connection refused; the server grows < 16 MiB and keeps serving",
    )


@_timed
def expansion(size: Size, bomb: str) -> Result:
    """A small frame that decodes to a great many values, or nests too deep: refused by
    the item budget and the depth limit, before it is built."""
    if bomb == "msgpack":
        codec = "msgpack"
        body = b"\xdd" + struct.pack(">I", 1_000_000) + b"\x90" * 1_000_000  # a million empty arrays
        frame = struct.pack(">I", len(body)) + body
        what = "1 MB msgpack frame of a million empty arrays"
    else:
        codec = "json"
        frame = b"[" * 500_000 + b"\n"
        what = "500,000 nested JSON arrays on one line"
    with ServerProcess("echo", codec=codec, limits={"max_message_size": 2 << 20}) as server:
        base = server.rss_kb()
        with connect(server.address) as sock:
            sock.sendall(frame)
            closed = wait_for(lambda: closed_by_peer(sock), 10)
        grown = (server.rss_kb() - base) / 1024
        served = server.alive
    return Result(
        f"expansion bomb ({bomb})",
        what,
        f"{'refused' if closed else 'not refused'}; the server grew {grown:.1f} MiB",
        closed and served and grown < 32,
        "refused; the server grows < 32 MiB",
    )


# -- fan-out to readers that do not read ---------------------------------------------------


@_timed
def fanout(size: Size, engine: str) -> Result:
    """A broker relays lines to readers and to members that never read: the readers get every
    line, the never-readers are cut off, and the server's memory stays bounded. The sender
    offers a batch once the readers have the last one (readers that read, at whatever pace
    the engine relays; one that falls 4 x write_buffer_high behind is cut off by design,
    on every engine, and what that pace is belongs to the benchmarks)."""
    readers, sleepers, lines = 10, 5, size.fanout_lines
    line = b"x" * 99 + b"\n"
    limits = {"idle_timeout": 3.0, "write_buffer_high": 64 * 1024, "write_buffer_low": 16 * 1024}
    with ServerProcess("broker", engine=engine, limits=limits) as server:
        base = server.rss_kb()
        members = [connect(server.address, timeout=30) for _ in range(readers)]
        idle = []
        for _ in range(sleepers):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(server.address)
            idle.append(sock)
        counts = [0] * readers

        def read(index: int) -> None:
            got = 0
            sock = members[index]
            while got < lines * len(line):
                chunk = sock.recv(1 << 16)
                if not chunk:
                    break
                got += len(chunk)
                counts[index] = got // len(line)

        threads = [threading.Thread(target=read, args=(i,)) for i in range(readers)]
        for thread in threads:
            thread.start()
        time.sleep(0.2)  # every member joined (the broker has no join message to wait for)
        with connect(server.address) as sender:
            batch = 500
            for start in range(0, lines, batch):
                sender.sendall(line * min(batch, lines - start))
                wait_for(lambda start=start: min(counts) >= min(start + batch, lines), 10, 0.001)
            for thread in threads:
                thread.join(30)
            peak = (server.rss_kb() - base) / 1024
            cut = wait_for(lambda: all(closed_by_peer(sock) for sock in idle), 10)
        for sock in [*members, *idle]:
            sock.close()
    every = all(count == lines for count in counts)
    return Result(
        f"fan-out to never-readers ({engine})",
        f"{lines:,} lines of 100 bytes, 500 at a time, to {readers} readers and {sleepers} members "
        "that never read",
        f"readers got {min(counts):,} to {max(counts):,} lines; never-readers "
        f"{'cut off' if cut else 'still open'}; the server grew {peak:.1f} MiB",
        every and cut and peak < 64,
        "every reader gets every line; every never-reader cut; growth < 64 MiB",
    )


# -- a stop under load -----------------------------------------------------------------------


@_timed
def stop_under_load(size: Size, engine: str) -> Result:
    """Clients pipelining lines when SIGTERM comes: every line sent before the stop is
    answered before the server closes. Each keeps at most WINDOW lines unanswered, as a
    pipelining client does (one that sends without reading would have the kernel's buffers
    hold what the server has not seen, and a stop's grace period is for replies, not for
    megabytes of backlog)."""
    clients = size.stop_clients
    window = 2048
    line = b"y" * 31 + b"\n"
    sent_before = [0] * clients
    answered = [0] * clients
    stopping = threading.Event()
    with ServerProcess("echo", engine=engine, limits={"grace": 10.0}) as server:
        socks = [connect(server.address) for _ in range(clients)]

        def write(index: int) -> None:
            sock = socks[index]
            try:
                while not stopping.is_set():
                    if sent_before[index] - answered[index] >= window:
                        time.sleep(0.001)  # the window is full: wait for replies
                        continue
                    sock.sendall(line * 32)
                    if not stopping.is_set():
                        sent_before[index] += 32
            except OSError:
                pass

        def read(index: int) -> None:
            sock = socks[index]
            sock.settimeout(20)
            got = 0
            try:
                while chunk := sock.recv(1 << 16):
                    got += len(chunk)
                    answered[index] = got // len(line)
            except OSError:
                pass

        threads = [threading.Thread(target=fn, args=(i,)) for i in range(clients) for fn in (write, read)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        stopping.set()
        server.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        for thread in threads:
            thread.join(30)
        for sock in socks:
            sock.close()
    lost = sum(max(0, before - got) for before, got in zip(sent_before, answered, strict=True))
    return Result(
        f"stop under load ({engine})",
        f"{clients} clients pipelining ({window} lines in flight at most each), SIGTERM after 1 s",
        f"{sum(sent_before):,} lines sent before the stop, {lost:,} of them unanswered",
        lost == 0,
        "every line sent before the stop answered",
    )


# -- descriptors running out -----------------------------------------------------------------


@_timed
def emfile(size: Size, engine: str) -> Result:
    """More connections than the server has descriptors: it pauses accepting instead of
    failing, and serves again as soon as some close."""
    with ServerProcess("echo", engine=engine, nofile=64, limits={"max_connections": 1000}) as server:
        held = []
        try:
            for _ in range(120):
                held.append(connect(server.address))
        except OSError:
            pass
        fds = server.fds()
        alive = server.alive
        for sock in held:
            sock.close()
        begun = time.monotonic()
        served = False
        while time.monotonic() - begun < 5 and not served:
            try:
                echo_round_trip(server.address, timeout=2)
                served = True
            except OSError:
                time.sleep(0.1)
        recovery = time.monotonic() - begun
    return Result(
        f"descriptors run out ({engine})",
        "120 connections to a server allowed 64 descriptors",
        f"it held {fds} descriptors and stayed up; a new client served {recovery:.2f} s after they closed",
        alive and served,
        "the server stays up, and serves again within 5 s",
    )


# -- datagrams -------------------------------------------------------------------------------


@_timed
def udp_flood(size: Size) -> Result:
    """A flood of datagrams: the server's memory stays bounded (the kernel drops what it
    cannot take), and a normal query is answered afterwards."""
    with ServerProcess("echo", datagram=True, codec="raw", engine="epoll") as server:
        base = server.rss_kb()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:
            flood.setblocking(False)
            payload = b"z" * 64
            sent = 0
            for _ in range(size.udp):
                try:
                    flood.sendto(payload, server.address)
                    sent += 1
                except BlockingIOError:
                    time.sleep(0.0005)
        grown = (server.rss_kb() - base) / 1024
        answered = False
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(1)
            for _ in range(5):
                client.sendto(b"ping", server.address)
                try:
                    answered = client.recv(64) == b"ping"
                    break
                except TimeoutError:
                    continue
    return Result(
        "UDP flood (epoll)",
        f"{size.udp:,} datagrams of 64 bytes as fast as one socket sends",
        f"{sent:,} sent; the server grew {grown:.1f} MiB; a query afterwards "
        f"{'answered' if answered else 'not answered'}",
        answered and grown < 16,
        "a query afterwards answered; growth < 16 MiB",
    )


# -- the decoders, fuzzed ------------------------------------------------------------------


_SAMPLES = {
    "raw": [b"hello"],
    "lines": [b"a line\n", b"crlf\r\n"],
    "length": [struct.pack(">I", 5) + b"hello"],
    "json": [b'{"a": [1, 2.5, "x", null, true]}\n'],
    "msgpack": [struct.pack(">I", 4) + b"\x92\x01\xa1x"],
    "http": [GET, b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"],
}


@_timed
def fuzz(size: Size) -> Result:
    """Random and mutated input to every codec's decoder, in random splits: only protocol
    errors come out, whatever the bytes."""
    rng = random.Random(1234)
    inputs = 0
    escaped: list[str] = []
    for name, samples in _SAMPLES.items():
        codec = codec_by_name(name)
        for _ in range(size.fuzz):
            data = bytearray(rng.choice(samples) * rng.randint(1, 3))
            for _ in range(rng.randint(0, 8)):
                if data and rng.random() < 0.6:
                    data[rng.randrange(len(data))] = rng.randrange(256)
                else:
                    data[rng.randrange(len(data) + 1) : 0] = os.urandom(rng.randint(1, 16))
            decoder = codec.decoder(1 << 16)
            inputs += 1
            try:
                at = 0
                while at < len(data):
                    step = rng.randint(1, 64)
                    decoder.feed(bytes(data[at : at + step]))
                    at += step
                decoder.feed(b"")
            except ProtocolError:
                pass
            except Exception as exc:
                escaped.append(f"{name}: {type(exc).__name__}: {exc}")
    return Result(
        "codec fuzzing",
        f"{inputs:,} inputs over {len(_SAMPLES)} codecs, in random splits",
        f"{len(escaped)} errors other than protocol errors" + (f" (first: {escaped[0]})" if escaped else ""),
        not escaped,
        "only protocol errors",
    )


# -- TLS ---------------------------------------------------------------------------------------


def _client_hello() -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


@_timed
def tls_flood(size: Size, certificate: Path, ca: Path) -> Result:
    """Half-open TLS connections (no ClientHello) and peers that vanish mid-handshake: cut at
    read_timeout, and a normal TLS client served meanwhile."""
    count = size.tls_flood
    limits = {
        "read_timeout": 2.0,
        "max_connections": 2 * count + 64,
        "max_connections_per_ip": 2 * count + 64,
    }
    hello = _client_hello()
    context = ssl.create_default_context(cafile=str(ca))
    with ServerProcess("echo", tls=str(certificate), limits=limits) as server, many(count) as half_open:
        for _ in range(count):
            half_open.append(connect(server.address))
        for _ in range(count):
            sock = connect(server.address)
            sock.sendall(hello[: len(hello) // 2])
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        latencies = []
        for _ in range(10):
            begun = time.perf_counter()
            with context.wrap_socket(connect(server.address), server_hostname="localhost") as tls:
                tls.sendall(b"ping\n")
                assert tls.recv(64) == b"ping\n"
            latencies.append(time.perf_counter() - begun)
        cut = wait_for(lambda: all(closed_by_peer(sock) for sock in half_open), 5)
    return Result(
        "TLS handshake flood (epoll)",
        f"{count} half-open and {count} vanishing TLS peers; read_timeout 2 s",
        f"half-open {'all cut' if cut else 'not all cut'}; a normal TLS client: "
        f"max {max(latencies) * 1000:.1f} ms of 10",
        cut and max(latencies) < 1.0,
        "every half-open one cut; the normal client served within 1 s",
    )


# -- PROXY headers -----------------------------------------------------------------------------


def _ask(address: tuple[str, int], first: bytes) -> str:
    """What whoami answers a client that sends ``first`` then a line ("" if it is refused)."""
    with connect(address) as sock:
        sock.settimeout(5)
        try:
            sock.sendall(first + b"who\n")
            got = b""
            while not got.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    return ""
                got += chunk
        except OSError:
            return ""
    return got.decode(errors="replace")


@_timed
def proxy_spoofing(size: Size) -> Result:
    """A PROXY header that names another client: believed only from a trusted balancer, and
    only when it is well-formed."""
    spoof = b"PROXY TCP4 203.0.113.7 127.0.0.1 4444 80\r\n"
    broken = b"PROXY TCP4 203.0.113.7 nowhere 4444 99999\r\n"
    with ServerProcess("whoami", codec="lines", proxy_trusted=["10.0.0.0/8"]) as untrusting:
        from_untrusted = _ask(untrusting.address, spoof)
    with ServerProcess("whoami", codec="lines", proxy_trusted=["127.0.0.0/8"]) as trusting:
        from_trusted = _ask(trusting.address, spoof)
        malformed = _ask(trusting.address, broken)
    claimed = "client: tcp://203.0.113.7:"  # (a refusal's error line may quote the header)
    believed_untrusted = claimed in from_untrusted
    believed_malformed = claimed in malformed
    believed_trusted = claimed in from_trusted
    return Result(
        "PROXY header spoofing",
        "a header naming 203.0.113.7 from an untrusted peer; a malformed one from a trusted peer",
        f"untrusted: {'believed' if believed_untrusted else 'refused'}; malformed: "
        f"{'believed' if believed_malformed else 'refused'}; well-formed from a trusted balancer: "
        f"{'believed' if believed_trusted else 'refused'}",
        not believed_untrusted and not believed_malformed and believed_trusted,
        "only a well-formed header from a trusted balancer is believed",
    )


# -- the broker's backend ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _redis(binary: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.sendall(b"PING\r\n")
                return probe.recv(10) == b"+PONG\r\n"
        except OSError:
            return False

    if not wait_for(answers, 10, 0.05):
        proc.kill()
        raise RuntimeError("redis-server did not start")
    return proc


@_timed
def redis_restart(size: Size) -> Result:
    """Two brokers joined through Redis, a line every 20 ms from a client of one to a client
    of the other; Redis is killed and started again: lines flow again soon after it is back
    (those sent while it was away are lost, as documented), and both brokers stay up."""
    name = "Redis restart under the broker"
    binary = shutil.which("redis-server")
    if binary is None:
        return Result(
            name, "", "", False, "", skipped="redis-server is not installed (Debian package redis-server)"
        )
    port = _free_port()
    backend = f"redis://127.0.0.1:{port}/0?channel=reliability"
    redis = _redis(binary, port)
    received: list[tuple[float, int]] = []
    try:
        with ServerProcess("broker", backend=backend) as a, ServerProcess("broker", backend=backend) as b:
            sender, reader = connect(a.address), connect(b.address)
            reader.settimeout(0.5)
            stop = threading.Event()

            def read() -> None:
                pending = b""
                while not stop.is_set():
                    try:
                        chunk = reader.recv(65536)
                    except TimeoutError:
                        continue
                    except OSError:
                        return
                    if not chunk:
                        return
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    received.extend((time.monotonic(), int(line)) for line in lines if line.isdigit())

            thread = threading.Thread(target=read)
            thread.start()
            sent = 0

            def send_for(seconds: float) -> None:
                nonlocal sent
                until = time.monotonic() + seconds
                while time.monotonic() < until:
                    sender.sendall(b"%d\n" % sent)
                    sent += 1
                    time.sleep(0.02)

            wait_for(lambda: (send_for(0.1), received)[1], 10)  # both brokers subscribed
            send_for(1.0)
            redis.kill()
            redis.wait()
            send_for(1.0)
            redis = _redis(binary, port)
            back = time.monotonic()
            before = len(received)
            send_for(6.0)
            stop.set()
            thread.join(5)
            flowing = [when for when, _ in received[before:] if when >= back]
            reconnect = (flowing[0] - back) if flowing else float("inf")
            alive = a.alive and b.alive
            sender.close()
            reader.close()
    finally:
        redis.kill()
        redis.wait()
    lost = sent - len(received)
    return Result(
        name,
        "two brokers joined through Redis, a line every 20 ms; Redis killed for 1 s, then started again",
        f"lines flowed again {reconnect:.1f} s after Redis was back; {lost} of {sent} lines lost "
        "(sent while it was away, or while the brokers resubscribed)",
        alive and reconnect <= 5,
        "both brokers stay up; lines flow again within 5 s of Redis coming back",
    )


# -- prefork -----------------------------------------------------------------------------------


def _load(
    address: tuple[str, int], seconds: float, clients: int
) -> tuple[list[int], list[int], threading.Thread]:
    """Clients making a new connection per GET for ``seconds``: (done, failed) counts."""
    done, failed = [0], [0]

    def client() -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            try:
                with connect(address) as sock:
                    http_get(sock)
                done[0] += 1
            except OSError:
                failed[0] += 1

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()

    def joiner() -> None:
        for thread in threads:
            thread.join()

    waiter = threading.Thread(target=joiner)
    waiter.start()
    return done, failed, waiter


@_timed
def worker_killed(size: Size) -> Result:
    """A prefork worker killed (SIGKILL) under load: few requests fail, a replacement is
    serving within a second."""
    with ServerProcess("hello", engine="epoll", workers=2) as server:
        wait_for(lambda: len(server.children()) == 2, 10)
        done, failed, waiter = _load(server.address, size.load_seconds, 4)
        time.sleep(size.load_seconds / 3)
        victim = server.children()[0]
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        replaced = wait_for(lambda: len([p for p in server.children() if p != victim]) == 2, 5, 0.005)
        back = time.monotonic() - killed
        waiter.join()
    total = done[0] + failed[0]
    return Result(
        "worker killed under load (prefork, 2 workers)",
        f"4 clients, a connection per GET, {size.load_seconds:g} s; SIGKILL to one worker",
        f"{failed[0]} of {total:,} requests failed; a replacement up after {back:.2f} s",
        replaced and back < 1.0 and failed[0] <= max(4, total // 100),
        "a replacement within 1 s; at most 1% (or the 4 in flight) fail",
    )


@_timed
def reload_under_load(size: Size) -> Result:
    """SIGHUP replaces every prefork worker under load: no request fails."""
    with ServerProcess("hello", engine="epoll", workers=2) as server:
        wait_for(lambda: len(server.children()) == 2, 10)
        before = set(server.children())
        done, failed, waiter = _load(server.address, size.load_seconds, 4)
        time.sleep(size.load_seconds / 3)
        server.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        replaced = wait_for(lambda: not before & set(server.children()), 10)
        waiter.join()
    return Result(
        "SIGHUP under load (prefork, 2 workers)",
        f"4 clients, a connection per GET, {size.load_seconds:g} s; SIGHUP",
        f"{failed[0]} of {done[0] + failed[0]:,} requests failed; every worker replaced: {replaced}",
        replaced and failed[0] == 0,
        "every worker replaced; no request fails",
    )


def plan(size: Size, certificate: Path, ca: Path) -> list[tuple[str, Callable[[], Result]]]:
    """The cases to run for ``size``, in order, each with a name ``--only`` can pick."""
    cases: list[tuple[str, Callable[[], Result]]] = []
    for engine in size.engines:
        cases.append((f"slowloris {engine}", functools.partial(slowloris, size, engine)))
    cases.append(("slowloris compat", functools.partial(compat_slowloris, size)))
    for engine in size.engines:
        cases.append((f"idle {engine}", functools.partial(idle_connections, size, engine)))
    for engine in size.engines:
        cases.append((f"abrupt {engine}", functools.partial(abrupt_peers, size, engine)))
    for codec in ("lines", "length", "json", "http"):
        cases.append((f"oversize {codec}", functools.partial(oversize, size, codec)))
    for bomb in ("msgpack", "json"):
        cases.append((f"expansion {bomb}", functools.partial(expansion, size, bomb)))
    for engine in size.engines:
        cases.append((f"fanout {engine}", functools.partial(fanout, size, engine)))
    for engine in size.engines:
        cases.append((f"stop {engine}", functools.partial(stop_under_load, size, engine)))
    for engine in ("epoll", "threads"):
        cases.append((f"emfile {engine}", functools.partial(emfile, size, engine)))
    cases.append(("udp", functools.partial(udp_flood, size)))
    cases.append(("fuzz", functools.partial(fuzz, size)))
    cases.append(("tls", functools.partial(tls_flood, size, certificate, ca)))
    cases.append(("proxy", functools.partial(proxy_spoofing, size)))
    cases.append(("redis", functools.partial(redis_restart, size)))
    cases.append(("kill", functools.partial(worker_killed, size)))
    cases.append(("sighup", functools.partial(reload_under_load, size)))
    return cases


__all__ = ["FULL", "QUICK", "Size", "plan"]
