"""A broker's lines across processes and machines, through Redis pub/sub.

Why two threads and a bounded queue: the broker's ``on_message`` runs on the
engine's loop, which must never wait for the network; it hands each line to a
queue that a publisher thread sends on, and a subscriber thread hands what
other processes published to the local clients (a send from another thread,
which every engine takes without blocking: a client that cannot keep up is
cut off, as with local lines, and never slows Redis or the others). Each
process tags what it publishes with its own id and skips its own lines on
the way back: its local clients had them already.

Pub/sub delivers to whoever is subscribed at the moment: lines published while
Redis is away are lost, and said so in the log (``lines_dropped`` counts them).
When the connection drops, both threads reconnect with a pause that doubles up
to 5 seconds, and say when they are back. The ``redis`` package is needed only
here (``pip install 'socketkit[redis]'``).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

__all__ = ["DEFAULT_CHANNEL", "RedisRelay", "parse_backend"]

log = logging.getLogger("socketkit")

DEFAULT_CHANNEL = "socketkit-broker"
_QUEUE = 10_000  # lines waiting to be published; more are dropped and counted
_FIRST_PAUSE = 0.1
_LONGEST_PAUSE = 5.0
_POLL = 0.5  # seconds the threads wait for work before they look at the stop flag


def parse_backend(url: str) -> tuple[str, str]:
    """(the Redis URL for the client, the channel) of ``redis://host:port/db?channel=name``.

    Raises:
        ValueError: not a redis:// or rediss:// URL, or an option other than channel.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ValueError(f"--backend {url!r}: write redis://HOST:PORT/DB?channel=NAME")
    channel = DEFAULT_CHANNEL
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key != "channel" or not value:
            raise ValueError(f"--backend {url!r}: the one option is channel=NAME (got {key!r})")
        channel = value
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), channel


def _redis() -> Any:
    try:
        import redis  # noqa: PLC0415 - optional dependency, imported on use
    except ImportError as exc:
        raise ImportError(
            "the Redis backend needs the redis package: pip install 'socketkit[redis]'"
        ) from exc
    return redis


class RedisRelay:
    """Publishes lines to a channel and hands the lines other processes publish to ``deliver``."""

    def __init__(self, url: str, deliver: Callable[[bytes], None]) -> None:
        self.redis = _redis()
        self.url, self.channel = parse_backend(url)
        self.deliver = deliver
        self.lines_dropped = 0
        self._id = uuid.uuid4().hex[:16].encode()  # this process's tag on what it publishes
        self._outbox: queue.Queue[bytes] = queue.Queue(_QUEUE)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pid = 0

    def start(self) -> None:
        """Start the threads, in this process (again in a forked child: threads do not
        survive a fork, and neither may a connection to Redis be shared across one)."""
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._id = uuid.uuid4().hex[:16].encode()
        self._outbox = queue.Queue(_QUEUE)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._subscribe, name="socketkit-redis-sub", daemon=True),
            threading.Thread(target=self._publish, name="socketkit-redis-pub", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def publish(self, line: bytes) -> None:
        """Queue ``line`` for the other processes; never blocks."""
        try:
            self._outbox.put_nowait(self._id + b" " + line)
        except queue.Full:
            self._drop(1, "the publish queue is full (Redis is slow or away)")

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(_POLL * 4)

    def _drop(self, count: int, why: str) -> None:
        self.lines_dropped += count
        log.warning("redis broker: %d line(s) not relayed: %s", count, why)

    def _client(self) -> Any:
        return self.redis.Redis.from_url(self.url, socket_connect_timeout=2, socket_timeout=5)

    def _pause(self, pause: float, what: str, exc: BaseException) -> float:
        log.warning("redis broker: %s %s failed: %s; trying again in %.1fs", what, self.url, exc, pause)
        self._stop.wait(pause)
        return min(pause * 2, _LONGEST_PAUSE)

    def _subscribe(self) -> None:
        pause, lost = _FIRST_PAUSE, False
        while not self._stop.is_set():
            try:
                pubsub = self._client().pubsub()
                try:
                    pubsub.subscribe(self.channel)
                    # Subscribed once Redis confirms it (before that, what others publish does
                    # not reach this process): only then is it said, and relayed from.
                    while not self._stop.is_set():
                        confirmed = pubsub.get_message(timeout=_POLL)
                        if confirmed is not None and confirmed.get("type") == "subscribe":
                            break
                    log.info(
                        "redis broker: %s channel %r at %s",
                        "subscribed again to" if lost else "subscribed to",
                        self.channel,
                        self.url,
                    )
                    pause = _FIRST_PAUSE
                    while not self._stop.is_set():
                        message = pubsub.get_message(timeout=_POLL)
                        if message is None or message.get("type") != "message":
                            continue
                        origin, _, line = bytes(message["data"]).partition(b" ")
                        if origin != self._id:
                            self.deliver(line)
                finally:
                    pubsub.close()
            except (self.redis.RedisError, OSError) as exc:
                lost = True
                pause = self._pause(pause, "subscribing at", exc)

    def _publish(self) -> None:
        pause, client = _FIRST_PAUSE, None
        while not self._stop.is_set():
            try:
                line = self._outbox.get(timeout=_POLL)
            except queue.Empty:
                continue
            try:
                if client is None:
                    client = self._client()
                client.publish(self.channel, line)
                pause = _FIRST_PAUSE
            except (self.redis.RedisError, OSError) as exc:
                client = None
                waiting = self._outbox.qsize()
                self._drop(1 + waiting, "Redis is away")
                for _ in range(waiting):  # what queued meanwhile would arrive late and out of turn
                    self._outbox.get_nowait()
                pause = self._pause(pause, "publishing to", exc)
