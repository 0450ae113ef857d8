"""What a connection sends, and how it recognises a complete reply.

Request mode frames a payload of ``size`` bytes with a socketkit codec and
counts the codec's decoded messages as replies. HTTP mode sends a GET and
parses just enough of each response (status line, Content-Length) to know
where it ends. WebSocket mode opens each connection with the upgrade (its
``101`` is the connection's first reply), then sends a text message of ``size``
bytes at a time (a client's masked frame) and counts the messages that come back;
with ``deflate`` it offers permessage-deflate without its own context (so each
message is the same compressed bytes, made once) and inflates the answers.
"""

from __future__ import annotations

from typing import Protocol

from ..codecs import Codec, Json, Msgpack, codec_by_name
from ..codecs.websocket_deflate import Deflate, Deflater, Inflater, check_answer
from ..codecs.websocket_frames import TEXT, FrameReader, frame
from ..codecs.websocket_handshake import client_request, new_key
from ..errors import RemoteProtocolError

__all__ = ["ReplyParser", "Workload", "make_workload"]

_MAX_HEAD = 65536


class ReplyParser(Protocol):
    def feed(self, data: bytes) -> list[int]:
        """Status of each reply completed by ``data`` (200 for non-HTTP replies)."""
        ...


class _CodecReplies:
    __slots__ = ("_decoder",)

    def __init__(self, codec: Codec) -> None:
        self._decoder = codec.decoder()

    def feed(self, data: bytes) -> list[int]:
        return [200] * len(self._decoder.feed(data))


class _HttpReplies:
    __slots__ = ("_buf", "_need", "_status")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need = -1  # body bytes still to come, or -1 while reading a head
        self._status = 0

    def feed(self, data: bytes) -> list[int]:
        buf = self._buf
        buf += data
        done: list[int] = []
        while True:
            if self._need < 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > _MAX_HEAD:
                        raise RemoteProtocolError("response head too long")
                    return done
                head = bytes(buf[:end]).lower()
                del buf[: end + 4]
                try:
                    self._status = int(head[9:12])
                except ValueError:
                    raise RemoteProtocolError(f"not an HTTP response: {head[:40]!r}") from None
                marker = head.find(b"\r\ncontent-length:")
                if marker < 0:
                    raise RemoteProtocolError("response without Content-Length")
                value = head[marker + 17 :].split(b"\r\n", 1)[0].strip()
                self._need = int(value) if value.isdigit() else -2
                if self._need == -2:
                    raise RemoteProtocolError("bad Content-Length in response")
            if len(buf) < self._need:
                return done
            del buf[: self._need]
            self._need = -1
            done.append(self._status)


#: a benchmark's offer: no context of its own (every message compressed alike), any window
_DEFLATE_OFFER = "permessage-deflate; client_max_window_bits; client_no_context_takeover"


class _WebSocketReplies:
    """The upgrade's answer (reported as its status), then the server's messages."""

    __slots__ = ("_deflate", "_head", "_reader")

    def __init__(self, deflate: bool = False) -> None:
        self._deflate = deflate
        self._head = bytearray()
        self._reader: FrameReader | None = None

    def feed(self, data: bytes) -> list[int]:
        if self._reader is None:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > _MAX_HEAD:
                    raise RemoteProtocolError("upgrade response head too long")
                return []
            try:
                status = int(self._head[9:12])
            except ValueError:
                raise RemoteProtocolError("not an HTTP response to the upgrade") from None
            rest = bytes(self._head[end + 4 :])
            inflater = None
            if self._deflate and status == 101:
                inflater = self._inflater(bytes(self._head[:end]))
            self._reader = FrameReader(masked=False, max_message=1 << 30, inflater=inflater)
            return [status if status != 101 else 200, *(self.feed(rest) if rest else [])]
        return [200 for event in self._reader.feed(data) if isinstance(event, (str, bytes))]

    @staticmethod
    def _inflater(head: bytes) -> Inflater:
        """The inflater for what the server agreed (it must: our messages are compressed)."""
        answers = [
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")[1:]
            if line.lower().startswith(b"sec-websocket-extensions:")
        ]
        agreed = check_answer(answers, Deflate(window_bits=9, context_takeover=False))
        if agreed is None:
            raise RemoteProtocolError("the server did not agree to permessage-deflate (--deflate)")
        return Inflater(agreed.receive_window, agreed.receive_takeover)


class Workload:
    """The request bytes and a fresh reply parser per connection; ``opening``, if any, is
    what a new connection sends first instead of a request (the WebSocket upgrade)."""

    def __init__(
        self,
        request: bytes,
        http: bool,
        codec: Codec | None,
        opening: bytes | None = None,
        deflate: bool = False,
    ) -> None:
        self.request = request
        self.http = http
        self._codec = codec
        self.opening = opening
        self._deflate = deflate

    def first(self) -> bytes:
        """What a new connection sends first."""
        return self.request if self.opening is None else self.opening

    def parser(self) -> ReplyParser:
        if self.opening is not None:
            return _WebSocketReplies(self._deflate)
        if self.http:
            return _HttpReplies()
        assert self._codec is not None
        return _CodecReplies(self._codec)


def make_workload(
    mode: str, codec_name: str, size: int, host: str, path: str, deflate: bool = False
) -> Workload:
    """The workload for a mode; ``deflate``: WebSocket messages compressed.

    Raises:
        ValueError: an unknown codec, or one that cannot carry the payload.
    """
    if mode == "ws":  # (one masking key for every message: a benchmark's, not a browser's)
        text = b"x" * size
        if deflate:  # (a 512-byte window: within any the server may ask for)
            text = Deflater(9, takeover=False).compress(text)
        opening = client_request(host, path, new_key(), extensions=_DEFLATE_OFFER if deflate else None)
        message = frame(TEXT, text, masked=True, compressed=deflate)
        return Workload(message, http=False, codec=None, opening=opening, deflate=deflate)
    if mode == "http" or (mode == "connect" and codec_name == "http"):
        connection = "close" if mode == "connect" else "keep-alive"
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: {connection}\r\n\r\n".encode()
        return Workload(request, http=True, codec=None)
    codec = codec_by_name(codec_name)
    if isinstance(codec, (Json, Msgpack)):
        payload: object = {"data": "x" * max(0, size - 11)}  # about size bytes once encoded
    else:
        payload = b"x" * size
    return Workload(codec.encode(payload), http=False, codec=codec)
