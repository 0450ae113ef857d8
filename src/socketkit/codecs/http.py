"""HttpRequest: HTTP/1.x requests in, responses out; enough for a fast hello service.

A sans-IO state machine: the head is found by its blank line, parsed, and a
``Content-Length`` body, if any, is collected. It handles keep-alive and
pipelining (several requests in one read decode in order). What it does not
handle it refuses with the right status, and the server closes after sending
it: 400 for a malformed request, 413 for a body over the limit, 431 for a head
over the limit, 501 for ``Transfer-Encoding`` (chunked uploads), 505 for a
version other than 1.0/1.1.

Responses: :meth:`HttpRequest.encode` takes an :class:`HttpResponse`, or bytes
that are already a full response (the fast path for fixed replies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from ..errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from .base import Codec, Decoder, check_positive

__all__ = ["HttpError", "HttpLimitExceeded", "HttpRequest", "HttpResponse", "Request"]

#: RFC 9110 token characters; ``name.translate(None, _TOKEN)`` leaves only the others (C speed).
_TOKEN = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_METHODS = frozenset((b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"))
_VERSIONS = frozenset((b"HTTP/1.1", b"HTTP/1.0"))
#: Header lines after the request line: a token, a colon, a value without CR or LF.
_HEADER_LINES = re.compile(rb"(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n]*\r\n)*")
#: In a validated, lower-cased head, searched from the end of the request line: the header
#: lines that decide framing and keep-alive, as (name, value without blanks around). There a
#: ``\n`` is always followed by a header name.
_FRAMING_HEADERS = re.compile(rb"\n(content-length|transfer-encoding|connection):[ \t]*([^\r]*?)[ \t]*\r")


class HttpError(RemoteProtocolError):
    """A request the codec refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status} {HTTPStatus(status).phrase}: {detail}")
        self.status = status


class HttpLimitExceeded(HttpError, LimitExceeded):
    """A head or body over its limit (431 or 413)."""


class Request:
    """One decoded HTTP request. Header names are lower-cased bytes.

    The head is validated when the request is decoded, but split into
    ``headers`` only when they are first read: a server that answers from the
    method and target alone never pays for it.
    """

    __slots__ = ("_head", "_headers", "body", "keep_alive", "method", "target", "version")

    def __init__(
        self,
        method: bytes,
        target: bytes,
        version: bytes,
        headers: list[tuple[bytes, bytes]] | None = None,
        body: bytes = b"",
        keep_alive: bool = True,
        head: bytes = b"",
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self._headers = headers
        self._head = head  # request line and header lines, each ending in CRLF
        self.body = body
        self.keep_alive = keep_alive

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """(name, value) pairs in arrival order; names lower-cased, values stripped."""
        headers = self._headers
        if headers is None:
            headers = self._headers = _split_headers(self._head)
        return headers

    def header(self, name: bytes, default: bytes | None = None) -> bytes | None:
        """The first value of header ``name`` (lower-case), or ``default``."""
        for key, value in self.headers:
            if key == name:
                return value
        return default

    def _fields(self) -> tuple[object, ...]:
        return (self.method, self.target, self.version, self.headers, self.body, self.keep_alive)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaced

    def __repr__(self) -> str:
        return (
            f"Request(method={self.method!r}, target={self.target!r}, version={self.version!r}, "
            f"headers={self.headers!r}, body={self.body!r}, keep_alive={self.keep_alive!r})"
        )


@dataclass(slots=True)
class HttpResponse:
    """A response to encode; Content-Length is added, and Connection: close when asked."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False
    #: for HEAD: send the headers of ``body`` but not the body itself.
    head_only: bool = False


class _HttpDecoder(Decoder):
    __slots__ = ("_buf", "_max_body", "_max_head", "_pending")

    def __init__(self, max_head: int, max_body: int) -> None:
        self._max_head = max_head
        self._max_body = max_body
        self._buf = bytearray()
        self._pending: tuple[Request, int] | None = None  # a request waiting for its body

    @property
    def buffered(self) -> int:
        return len(self._buf) + (1 if self._pending else 0)

    def feed(self, data: bytes) -> list[Any]:
        buf = self._buf
        if not data:
            if buf or self._pending:
                raise HttpError(400, "connection closed in the middle of a request")
            return []
        if not buf and self._pending is None:
            # The common case: one whole request head, nothing after it.
            end = data.find(b"\r\n\r\n")
            if 0 <= end == len(data) - 4 and end <= self._max_head:
                try:
                    request, length = _parse_crlf_head(data[: end + 2])
                except HttpError:
                    request, length = _parse_head(data[: end + 2])  # bare LFs, or a real error
                if not length:
                    return [request]
                if length > self._max_body:
                    raise HttpLimitExceeded(413, f"body of {length} bytes over the limit of {self._max_body}")
                self._pending = (request, length)
                return []
        buf += data
        out: list[Any] = []
        try:
            self._parse(buf, out)
        except HttpError as exc:
            exc.messages = out
            raise
        return out

    def _parse(self, buf: bytearray, out: list[Any]) -> None:
        while buf:
            if self._pending is not None:
                request, length = self._pending
                if len(buf) < length:
                    break
                request.body = bytes(buf[:length])
                del buf[:length]
                self._pending = None
                out.append(request)
                continue
            end = buf.find(b"\r\n\r\n")
            keep, skip = 2, 4  # the head keeps its last line's end; the blank line is dropped
            if end < 0:
                end = buf.find(b"\n\n")
                keep, skip = 1, 2
            if end < 0:
                if len(buf) > self._max_head:
                    raise HttpLimitExceeded(431, f"request head over {self._max_head} bytes")
                break
            if end > self._max_head:
                raise HttpLimitExceeded(431, f"request head over {self._max_head} bytes")
            head = bytes(buf[: end + keep])
            del buf[: end + skip]
            request, length = _parse_head(head)
            if length > self._max_body:
                raise HttpLimitExceeded(413, f"body of {length} bytes over the limit of {self._max_body}")
            if length:
                self._pending = (request, length)
            else:
                out.append(request)


def _parse_head(head: bytes) -> tuple[Request, int]:
    """The request in ``head`` (request line and header lines, each ending in a line break)
    and its body length."""
    try:
        return _parse_crlf_head(head)
    except HttpError:
        if b"\n" not in head.replace(b"\r\n", b""):
            raise
    # Bare LF line endings (tolerated, as RFC 9112 allows): normalise, then parse.
    return _parse_crlf_head(head.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


def _parse_crlf_head(head: bytes) -> tuple[Request, int]:
    line_end = head.find(b"\r\n")
    if line_end < 0:
        line_end = len(head)
    parts = head[:line_end].split(b" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if (method not in _METHODS and (not method or method.translate(None, _TOKEN))) or not target:
        raise HttpError(400, "malformed request line")
    if version not in _VERSIONS:
        if version.startswith(b"HTTP/"):
            raise HttpError(505, f"HTTP version {version.decode('latin-1')} is not supported")
        raise HttpError(400, "malformed request line")
    if _HEADER_LINES.fullmatch(head, line_end + 2) is None:
        raise HttpError(400, "malformed header line")
    keep_alive = version == b"HTTP/1.1"
    length = 0
    lower = head.lower()
    if lower.find(b"\nc") < 0 and lower.find(b"\nt") < 0:
        # No Content-Length, Transfer-Encoding or Connection (find beats ``in`` here).
        return Request(method, target, version, None, b"", keep_alive, head), 0
    connection = b""
    for name, value in _FRAMING_HEADERS.findall(lower, line_end):  # the rest are split only if read
        if name == b"content-length":
            if not value.isdigit() or (length and int(value) != length):
                raise HttpError(400, "bad Content-Length")
            length = int(value)
        elif name == b"transfer-encoding":
            raise HttpError(501, "Transfer-Encoding is not supported; send a Content-Length")
        elif name == b"connection":
            connection = value
    if connection:
        keep_alive = b"close" not in connection if keep_alive else b"keep-alive" in connection
    return Request(method, target, version, None, b"", keep_alive, head), length


def _split_headers(head: bytes) -> list[tuple[bytes, bytes]]:
    """The header lines of a validated CRLF head as (lower-cased name, stripped value)."""
    headers = []
    for line in head.split(b"\r\n")[1:-1]:
        name, _, value = line.partition(b":")
        headers.append((name.lower(), value.strip(b" \t")))
    return headers


class HttpRequest(Codec):
    """``HttpRequest(max_head=8192, max_body=1 MiB)``: server side of HTTP/1.0 and 1.1."""

    name = "http"

    def __init__(self, max_head: int = 8192, max_body: int = 1024 * 1024) -> None:
        self.max_head = check_positive("max_head", max_head)
        self.max_length = check_positive("max_body", max_body)

    def decoder(self, max_length: int | None = None) -> Decoder:
        return _HttpDecoder(self.max_head, self._limit(max_length))

    def encode(self, message: Any) -> bytes:
        if isinstance(message, bytes):
            return message
        if not isinstance(message, HttpResponse):
            raise TypeError(f"HttpRequest sends HttpResponse or bytes, not {type(message).__name__}")
        return render_response(message)

    def decode_datagram(self, data: bytes, max_length: int | None = None) -> Any:
        raise RemoteProtocolError("HTTP is not served over datagrams")

    def error_reply(self, error: Exception) -> bytes | None:
        status = getattr(error, "status", 400)
        text = f"{status} {HTTPStatus(status).phrase}\n".encode()
        return render_response(HttpResponse(status, text, [("Content-Type", "text/plain")], close=True))

    def __repr__(self) -> str:
        return f"HttpRequest(max_head={self.max_head}, max_body={self.max_length})"


def render_response(response: HttpResponse) -> bytes:
    """The bytes of ``response``, with Content-Length (and Connection: close when closing)."""
    try:
        phrase = HTTPStatus(response.status).phrase
    except ValueError:
        raise LocalProtocolError(f"unknown HTTP status {response.status}") from None
    lines = [f"HTTP/1.1 {response.status} {phrase}"]
    lines += [f"{name}: {value}" for name, value in response.headers]
    lines.append(f"Content-Length: {len(response.body)}")
    if response.close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if response.head_only else head + response.body
