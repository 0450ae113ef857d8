"""HttpRequest: HTTP/1.x requests in, responses out; enough for a fast hello service.

A sans-IO state machine: the head is found by its blank line, parsed, and a
``Content-Length`` body, if any, is collected. It handles keep-alive and
pipelining (several requests in one read decode in order). What it does not
handle it refuses with the right status, and the server closes after sending
it: 400 for a malformed request, 413 for a body over the limit, 417 for an
expectation other than ``100-continue``, 431 for a head over the limit, 501 for
``Transfer-Encoding`` (chunked uploads), 505 for a version other than 1.0/1.1.

It is as strict as h11 (the test suite uses h11 as an oracle): a request line
is exactly ``method SP target SP version`` with a visible-ASCII target; field
lines hold no NUL, control characters or obsolete folding; an HTTP/1.1 request
has exactly one ``Host``; differing ``Content-Length`` values are refused (the
request-smuggling case); ``Connection`` tokens are matched whole. The verdict
never depends on how the bytes were split into reads (see ``_http_head``), and a
first line that can never become a request line (binary, a TLS ClientHello) is
refused as soon as it is seen. ``Expect: 100-continue`` is answered with
``100 Continue`` when the body has not arrived yet (:meth:`Decoder.take_interim`).

Responses: :meth:`HttpRequest.encode` takes an :class:`HttpResponse`, or bytes
that are already a full response (the fast path for fixed replies).
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from ..errors import LimitExceeded, LocalProtocolError, RemoteProtocolError
from ._http_head import FIELD_LINES, HEAD_END, check_field, crlf_head
from .base import Codec, Decoder, check_positive
from .http_client import HttpClient
from .http_messages import HttpResponse, Request

__all__ = ["HttpError", "HttpLimitExceeded", "HttpRequest", "HttpResponse", "Request"]

_TOKEN_CLASS = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_VERSIONS = frozenset((b"HTTP/1.1", b"HTTP/1.0"))
#: A request line (RFC 9112 §3): method token, target of visible characters, version; as cut
#: at its LF (its CR, if any, still on it) and as cut at its CRLF (no CR may be left on it).
_REQUEST_LINE_BODY = rb"(" + _TOKEN_CLASS + rb"+) ([\x21-\x7e]+) (HTTP/[0-9]\.[0-9])"
_REQUEST_LINE = re.compile(_REQUEST_LINE_BODY + rb"\r?")
_CRLF_REQUEST_LINE = re.compile(_REQUEST_LINE_BODY)
#: A whole CRLF head, request line and field lines, in one match (the common case's only one).
_CRLF_HEAD = re.compile(_REQUEST_LINE_BODY + rb"\r\n" + FIELD_LINES)
#: In a lower-cased head: the start of a field that may decide framing, keep-alive or
#: expectations (Content-Length, Transfer-Encoding, Connection, Expect). Without one the
#: request is read without looking at its fields.
_MAYBE_FRAMING = re.compile(rb"\n[cte]")
#: Every beginning of a request line: what an unfinished first line must match.
_REQUEST_LINE_START = re.compile(
    _TOKEN_CLASS
    + rb"*|"
    + _TOKEN_CLASS
    + rb"+ [\x21-\x7e]*|"
    + _TOKEN_CLASS
    + rb"+ [\x21-\x7e]+ (?:H(?:T(?:T(?:P(?:/(?:[0-9](?:\.(?:[0-9]\r?)?)?)?)?)?)?)?)?"
)
#: In a validated, lower-cased head, searched from the end of the request line: the field
#: lines that decide framing, keep-alive and expectations, as (name, value without blanks
#: around). There a ``\n`` is always followed by a field name.
_FRAMING_HEADERS = re.compile(
    rb"\n(content-length|transfer-encoding|connection|expect):[ \t]*([^\r]*?)[ \t]*\r"
)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HttpError(RemoteProtocolError):
    """A request the codec refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status} {HTTPStatus(status).phrase}: {detail}")
        self.status = status


class HttpLimitExceeded(HttpError, LimitExceeded):
    """A head or body over its limit (431 or 413)."""


class _HttpDecoder(Decoder):
    __slots__ = ("_buf", "_interim", "_max_body", "_max_head", "_pending", "buffered")

    buffered: int  # kept as feed() goes: read on every read, so no call to compute it

    def __init__(self, max_head: int, max_body: int) -> None:
        self._max_head = max_head
        self._max_body = max_body
        self._buf = bytearray()
        self._pending: tuple[Request, int] | None = None  # a request waiting for its body
        self._interim = b""
        self.buffered = 0

    def take_interim(self) -> bytes:
        interim, self._interim = self._interim, b""
        return interim

    def feed(self, data: bytes) -> list[Any]:
        buf = self._buf
        if not data:
            if buf or self._pending:
                raise HttpError(400, "connection closed in the middle of a request")
            return []
        if not buf and self._pending is None:
            # The common case: one whole CRLF request head, nothing after it. Anything
            # unusual (bare LFs, an error) is decided by the general path below.
            end = data.find(b"\r\n\r\n")
            if 0 <= end == len(data) - 4 and end + 4 <= self._max_head:
                try:
                    request, length = _parse_crlf_head(data[: end + 2])
                except HttpError:
                    pass
                else:
                    if not length:
                        return [request]  # (nothing was buffered, and nothing is)
                    self._body_expected(request, length, 0)
                    self.buffered = 1
                    return []
        buf += data
        out: list[Any] = []
        try:
            self._parse(buf, out)
        except HttpError as exc:
            exc.messages = out
            raise
        finally:
            self.buffered = len(buf) + (1 if self._pending else 0)
        return out

    def _parse(self, buf: bytearray, out: list[Any]) -> None:
        limit = self._max_head
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
            # Only the first max_head bytes can hold a head: what lies beyond never
            # changes the verdict, so it is the same however the bytes arrive.
            found = HEAD_END.search(buf, 0, limit)
            if found is None:
                _check_unfinished_head(buf, limit)
                break
            head = bytes(buf[: found.end()])
            del buf[: found.end()]
            request, length = _parse_head(head)
            if length:
                self._body_expected(request, length, len(buf))
            else:
                out.append(request)

    def _body_expected(self, request: Request, length: int, have: int) -> None:
        if length > self._max_body:
            raise HttpLimitExceeded(413, f"body of {length} bytes over the limit of {self._max_body}")
        self._pending = (request, length)
        if have < length and request.expects_continue:
            self._interim = _CONTINUE


def _check_unfinished_head(buf: bytearray, limit: int) -> None:
    """Refuse a head that is not complete yet but can never become a valid one."""
    line_end = buf.find(b"\n", 0, limit)
    if line_end >= 0:
        _request_line(bytes(buf[:line_end]))
    elif _REQUEST_LINE_START.fullmatch(buf, 0, limit) is None:
        raise HttpError(400, "malformed request line")  # binary, a TLS hello: no need to wait
    if len(buf) >= limit:
        raise HttpLimitExceeded(431, f"request head over {limit} bytes")


def _request_line(line: bytes, grammar: re.Pattern[bytes] = _REQUEST_LINE) -> tuple[bytes, bytes, bytes]:
    """Method, target and version of a request line (its CR, if any, included; none at all
    with ``_CRLF_REQUEST_LINE``, for a line cut at its CRLF)."""
    match = grammar.fullmatch(line)
    if match is None:
        raise HttpError(400, "malformed request line")
    method, target, version = match.groups()
    if version not in _VERSIONS:
        raise HttpError(505, f"HTTP version {version[5:].decode()} is not supported")
    return method, target, version


def _parse_head(head: bytes) -> tuple[Request, int]:
    """The request in ``head`` (from its request line to its empty line, any line ends)
    and its body length."""
    line_end = head.find(b"\n")
    _request_line(head[:line_end])  # a malformed request line is reported before its fields
    fields = crlf_head(head[line_end + 1 :])
    if fields is None:
        raise HttpError(400, "malformed header line (a CR that ends no line)")
    line = head[:line_end].removesuffix(b"\r")
    return _parse_crlf_head(line + b"\r\n" + fields[:-2])


def _parse_crlf_head(head: bytes) -> tuple[Request, int]:
    """The request in ``head`` (request line and field lines, each ending in CRLF) and its
    body length."""
    match = _CRLF_HEAD.fullmatch(head)
    if match is None:  # which part is wrong: the request line's error first, as it comes first
        _request_line(head[: head.find(b"\r\n")], _CRLF_REQUEST_LINE)  # "\r\r\n": refused
        raise HttpError(400, "malformed header line")
    method, target, version = match.groups()
    if version not in _VERSIONS:
        raise HttpError(505, f"HTTP version {version[5:].decode()} is not supported")
    http11 = version == b"HTTP/1.1"
    lower = head.lower()
    hosts = lower.count(b"\nhost:")
    if hosts != 1 and (hosts or http11):
        raise HttpError(
            400, "more than one Host header" if hosts else "HTTP/1.1 request without a Host header"
        )
    if _MAYBE_FRAMING.search(lower) is None:
        return Request(method, target, version, None, b"", http11, head), 0
    line_end = head.find(b"\r\n")
    length: int | None = None
    connection: list[bytes] = []
    expect = False
    for name, value in _FRAMING_HEADERS.findall(lower, line_end):  # the rest are split only if read
        if name == b"content-length":
            if not value.isdigit():
                raise HttpError(400, "bad Content-Length")
            if len(value) > 18:
                raise HttpLimitExceeded(413, "Content-Length over the body limit")
            if length is not None and int(value) != length:
                raise HttpError(400, "conflicting Content-Length headers")
            length = int(value)
        elif name == b"transfer-encoding":
            raise HttpError(501, "Transfer-Encoding is not supported; send a Content-Length")
        elif name == b"connection":
            connection += [token.strip(b" \t") for token in value.split(b",")]
        elif http11:  # expect; HTTP/1.0 expectations are ignored (RFC 9110 §10.1.1)
            if value != b"100-continue":
                raise HttpError(417, f"unsupported expectation {value.decode('latin-1')!r}")
            expect = True
    keep_alive = b"close" not in connection if http11 else b"keep-alive" in connection
    request = Request(method, target, version, None, b"", keep_alive, head)
    request.expects_continue = expect
    return request, length or 0


class HttpRequest(Codec):
    """``HttpRequest(max_head=8192, max_body=1 MiB)``: server side of HTTP/1.0 and 1.1.

    Decodes :class:`Request` (method, target, headers, body, keep_alive) as
    strictly as h11, whatever the split of the stream into reads; encodes
    :class:`HttpResponse` or bytes. Refusals carry their status (400, 413, 417,
    431, 501, 505) in the error reply, and the connection closes after it.
    """

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

    def client_side(self) -> Codec:
        """:class:`HttpClient`: requests out, responses in."""
        return HttpClient(self.max_head)

    def error_reply(self, error: Exception) -> bytes | None:
        status = getattr(error, "status", 400)
        text = f"{error}\n" if isinstance(error, HttpError) else f"{status} {HTTPStatus(status).phrase}\n"
        return render_response(
            HttpResponse(status, text.encode(), [("Content-Type", "text/plain")], close=True)
        )

    def failure_reply(self) -> bytes:
        return _FAILURE_REPLY

    def __repr__(self) -> str:
        return f"HttpRequest(max_head={self.max_head}, max_body={self.max_length})"


def render_response(response: HttpResponse) -> bytes:
    """The bytes of ``response``, with Content-Length (and Connection: close when closing).

    Raises:
        LocalProtocolError: an unknown status, or a header that would break the message:
            a name that is not a token, a CR, LF, NUL or other control character in a value
            (response splitting), a character outside Latin-1.
    """
    try:
        phrase = HTTPStatus(response.status).phrase
    except ValueError:
        raise LocalProtocolError(f"unknown HTTP status {response.status}") from None
    lines = [f"HTTP/1.1 {response.status} {phrase}"]
    for name, value in response.headers:
        check_field(name, value)
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(response.body)}")
    if response.close:
        lines.append("Connection: close")
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError as exc:
        raise LocalProtocolError(
            f"HTTP header outside Latin-1: {exc.object[exc.start : exc.end]!r}"
        ) from None
    return head if response.head_only else head + response.body


#: what a request whose handler raised gets: no detail of the error, and the connection closes
_FAILURE_REPLY = render_response(
    HttpResponse(500, b"500 Internal Server Error\n", [("Content-Type", "text/plain")], close=True)
)
