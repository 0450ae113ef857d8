"""HttpClient: the client side of HTTP/1.x, requests out and responses in.

Why a codec of its own: a client reads responses, whose first line and body
rules differ from a request's, so the request decoder cannot read them (it
answered a good 200 with "malformed request line"). ``HttpRequest.client_side()``
gives this codec, so ``connect(url, codec=HttpRequest())`` and ``socketkit send
--codec http`` speak the right half.

A response body is framed by ``Content-Length``, by ``Transfer-Encoding:
chunked``, or by the end of the connection; 1xx, 204 and 304 responses have
none, and interim 1xx responses (``100 Continue``) are skipped. Responses to
HEAD are not told apart (a decoder does not know which request a response
answers): send HEAD with raw bytes and read the head yourself.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from ._http_head import HEAD_END, check_field, crlf_head, fields_valid, split_fields
from .base import Codec, Decoder, check_positive
from .http_messages import HttpResponse, Request

__all__ = ["HttpClient"]

_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*)?")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})(?:;[^\r\n]*)?\r?\n")


class _ResponseDecoder(Decoder):
    __slots__ = ("_body", "_buf", "_length", "_max_body", "_max_head", "_response")

    def __init__(self, max_head: int, max_body: int) -> None:
        self._max_head = max_head
        self._max_body = max_body
        self._buf = bytearray()
        self._response: HttpResponse | None = None  # a response whose body is being read
        self._length: int | None = None  # body bytes expected; -1 chunked; None to the end
        self._body = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buf) + (1 if self._response is not None else 0)

    def feed(self, data: bytes) -> list[Any]:
        out: list[Any] = []
        try:
            if not data:
                self._end(out)
            else:
                self._buf += data
                self._parse(out)
        except RemoteProtocolError as exc:
            exc.messages = out
            raise
        return out

    def _end(self, out: list[Any]) -> None:
        response = self._response
        if response is not None and self._length is None:  # the body ends with the connection
            response.body = bytes(self._body + self._buf)
            self._buf.clear()
            self._response = None
            out.append(response)
        elif response is not None or self._buf:
            raise RemoteProtocolError("connection closed in the middle of a response")

    def _parse(self, out: list[Any]) -> None:
        buf = self._buf
        while buf:
            if self._response is None:
                found = HEAD_END.search(buf, 0, self._max_head)
                if found is None:
                    if len(buf) >= self._max_head:
                        raise LimitExceeded(f"response head over {self._max_head} bytes")
                    return
                head = bytes(buf[: found.end()])
                del buf[: found.end()]
                self._start(head, out)
            elif not self._read_body(out):
                return

    def _start(self, head: bytes, out: list[Any]) -> None:
        line_end = head.find(b"\n")
        match = _STATUS_LINE.fullmatch(head[:line_end].removesuffix(b"\r"))
        if match is None:
            raise RemoteProtocolError("malformed HTTP status line")
        fields = crlf_head(head[line_end + 1 :])  # the field lines, then the empty line
        if fields is None or not fields_valid(fields[:-2], 0):
            raise RemoteProtocolError("malformed HTTP header line")
        status = int(match.group(2))
        pairs = split_fields(b"\r\n" + fields[:-2], keep_case=True)  # shown as the server sent them
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in pairs]
        found = {name.lower(): value for name, value in pairs}
        tokens = [token.strip(b" \t").lower() for token in found.get(b"connection", b"").split(b",")]
        close = b"close" in tokens or (match.group(1) == b"0" and b"keep-alive" not in tokens)
        response = HttpResponse(status, b"", headers, close=close)
        if status < 200:
            return  # an interim response: the final one follows
        if status in (204, 304):
            out.append(response)
            return
        self._response = response
        self._body = bytearray()
        if b"chunked" in found.get(b"transfer-encoding", b"").lower():
            self._length = -1
        elif b"content-length" in found:
            value = found[b"content-length"]
            if not value.isdigit() or len(value) > 18:
                raise RemoteProtocolError("bad Content-Length in the response")
            self._length = int(value)
            if self._length > self._max_body:
                raise LimitExceeded(
                    f"response body of {self._length} bytes over the limit of {self._max_body}"
                )
        else:
            self._length = None

    def _read_body(self, out: list[Any]) -> bool:
        """Take body bytes from the buffer; True if the response completed."""
        buf, length = self._buf, self._length
        if length is None:  # until the connection ends
            self._body += buf
            buf.clear()
            if len(self._body) > self._max_body:
                raise LimitExceeded(f"response body over the limit of {self._max_body}")
            return False
        if length >= 0:
            if len(buf) < length:
                return False
            self._body += buf[:length]
            del buf[:length]
            return self._complete(out)
        while True:  # chunked: size line, data, CRLF; a zero size, trailers, an empty line
            size_line = _CHUNK_SIZE.match(buf)
            if size_line is None:
                if b"\n" in buf[:32] or len(buf) > 32:
                    raise RemoteProtocolError("malformed chunk size in the response")
                return False
            size = int(size_line.group(1), 16)
            start = size_line.end()
            if size == 0:  # the last chunk: trailer lines, if any, then an empty line
                trailers = HEAD_END.search(b"\n" + buf[start:])
                if trailers is None:
                    return False
                del buf[: start + trailers.end() - 1]
                return self._complete(out)
            if len(buf) < start + size + 2:
                return False
            if len(self._body) + size > self._max_body:
                raise LimitExceeded(f"response body over the limit of {self._max_body}")
            self._body += buf[start : start + size]
            del buf[: start + size + 2]

    def _complete(self, out: list[Any]) -> bool:
        assert self._response is not None
        self._response.body = bytes(self._body)
        out.append(self._response)
        self._response = None
        self._body = bytearray()
        return True


class HttpClient(Codec):
    """``HttpClient(max_head=8192, max_body=16 MiB)``: sends requests, decodes responses.

    ``encode`` takes a :class:`Request` (``Request(b"GET", b"/", b"HTTP/1.1",
    [(b"host", b"example.com")])``; Content-Length is added for a body) or bytes
    that are already a whole request.
    """

    name = "http-client"

    def __init__(self, max_head: int = 8192, max_body: int = 16 * 1024 * 1024) -> None:
        self.max_head = check_positive("max_head", max_head)
        self.max_length = check_positive("max_body", max_body)

    def decoder(self, max_length: int | None = None) -> Decoder:
        return _ResponseDecoder(self.max_head, self._limit(max_length))

    def encode(self, message: Any) -> bytes:
        if isinstance(message, bytes):
            return message
        if not isinstance(message, Request):
            raise TypeError(f"HttpClient sends Request or bytes, not {type(message).__name__}")
        return render_request(message)

    def refusal(self, message: Any) -> str | None:
        if isinstance(message, HttpResponse) and message.status >= 400:
            return f"{message.status} {message.body.decode(errors='replace').strip()}"
        return None

    def decode_datagram(self, data: bytes, max_length: int | None = None) -> Any:
        raise RemoteProtocolError("HTTP is not carried by datagrams")

    def __repr__(self) -> str:
        return f"HttpClient(max_head={self.max_head}, max_body={self.max_length})"


def render_request(request: Request) -> bytes:
    """The bytes of ``request``, with Content-Length when it has a body.

    Raises:
        LocalProtocolError: a method, target or header that would break the request.
    """
    method, target = request.method.decode("latin-1"), request.target.decode("latin-1")
    if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", method) or not re.fullmatch(r"[\x21-\x7e]+", target):
        raise LocalProtocolError(f"cannot send the request line {method!r} {target!r}")
    lines = [f"{method} {target} {request.version.decode('latin-1')}"]
    for name, value in request.headers:
        if name == b"content-length":
            continue
        text_name, text_value = name.decode("latin-1"), value.decode("latin-1")
        check_field(text_name, text_value)
        lines.append(f"{text_name}: {text_value}")
    if request.body or request.method in (b"POST", b"PUT", b"PATCH"):
        lines.append(f"Content-Length: {len(request.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + request.body
