"""The HttpRequest codec: keep-alive, pipelining, limits, refusals, fuzzing."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socketkit import errors
from socketkit.codecs.http import HttpError, HttpRequest, HttpResponse, Request

GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"


def decode(data: bytes, chunk: int | None = None, codec: HttpRequest | None = None) -> list:  # type: ignore[type-arg]
    decoder = (codec or HttpRequest()).decoder()
    if chunk is None:
        return decoder.feed(data)
    out = []
    for i in range(0, len(data), chunk):
        out += decoder.feed(data[i : i + chunk])
    return out


@pytest.mark.parametrize("chunk", [None, 1, 3, 17])
def test_pipelined_requests_decode_in_order_whatever_the_chunking(chunk: int | None) -> None:
    requests = decode(GET + POST + GET.replace(b"/ ", b"/two "), chunk)
    assert [(r.method, r.target, r.body) for r in requests] == [
        (b"GET", b"/", b""),
        (b"POST", b"/submit", b"hello"),
        (b"GET", b"/two", b""),
    ]
    assert requests[1].header(b"content-length") == b"5"


def test_keep_alive_rules() -> None:
    assert decode(GET)[0].keep_alive
    assert not decode(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0].keep_alive
    assert not decode(b"GET / HTTP/1.0\r\n\r\n")[0].keep_alive
    assert decode(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")[0].keep_alive


def test_bare_lf_line_endings_are_tolerated() -> None:
    assert decode(b"GET / HTTP/1.1\nHost: x\n\n")[0].target == b"/"
    mixed = decode(b"GET /m HTTP/1.1\nHost: x\r\nConnection: close\r\n\r\n")[0]
    assert (mixed.target, mixed.header(b"host"), mixed.keep_alive) == (b"/m", b"x", False)


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_headers_are_split_on_first_use_with_names_lower_cased(chunk: int | None) -> None:
    head = b"GET /h HTTP/1.1\r\nHost: example.com\r\nX-Token:  a b \t\r\nAccept: */*\r\n\r\n"
    [request] = decode(head, chunk)
    assert request.headers == [(b"host", b"example.com"), (b"x-token", b"a b"), (b"accept", b"*/*")]
    assert request.header(b"x-token") == b"a b"
    assert request.header(b"missing", b"default") == b"default"


def test_connection_header_in_any_case_and_list() -> None:
    assert not decode(b"GET / HTTP/1.1\r\nHost: x\r\nCONNECTION: Upgrade, Close\r\n\r\n")[0].keep_alive
    assert decode(b"GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n")[0].keep_alive
    assert decode(b"GET / HTTP/1.1\r\nHost: x\r\nCache-Control: close\r\n\r\n")[0].keep_alive


def test_a_body_sent_with_its_head_in_one_read() -> None:
    [request] = decode(POST)
    assert (request.body, request.header(b"content-length")) == (b"hello", b"5")
    decoder = HttpRequest().decoder()
    assert decoder.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n") == []  # head alone first
    assert decoder.buffered
    [late] = decoder.feed(b"abc")
    assert late.body == b"abc" and not decoder.buffered


def test_requests_compare_and_print_by_their_fields() -> None:
    [a] = decode(GET)
    [b] = decode(GET)
    assert a == Request(b"GET", b"/", b"HTTP/1.1", [(b"host", b"x")]) == b
    assert a != decode(GET.replace(b"/ ", b"/other "))[0]
    assert "target=b'/'" in repr(a) and "(b'host', b'x')" in repr(a)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",  # space before the colon
        b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",  # a bare CR in a value
        b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",  # obsolete line folding
        b"G@T / HTTP/1.1\r\n\r\n",  # not a token
    ],
)
def test_malformed_heads_are_400(data: bytes) -> None:
    with pytest.raises(HttpError) as info:
        decode(data)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET /\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 9000, 431),
    ],
)
def test_refusals_carry_their_status(data: bytes, status: int) -> None:
    with pytest.raises(HttpError) as info:
        decode(data)
    assert info.value.status == status
    reply = HttpRequest().error_reply(info.value)
    assert reply is not None and reply.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Connection: close" in reply


def test_oversize_head_is_refused_before_it_is_complete() -> None:
    decoder = HttpRequest(max_head=100).decoder()
    with pytest.raises(errors.LimitExceeded):
        for _ in range(10):
            decoder.feed(b"X" * 20)


def test_end_of_stream_mid_request() -> None:
    decoder = HttpRequest().decoder()
    decoder.feed(GET[:10])
    with pytest.raises(errors.RemoteProtocolError):
        decoder.feed(b"")


def test_responses_render_with_length_and_close() -> None:
    codec = HttpRequest()
    data = codec.encode(HttpResponse(200, b"hi", [("X-A", "b")], close=True))
    assert data == b"HTTP/1.1 200 OK\r\nX-A: b\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
    assert codec.encode(b"raw bytes") == b"raw bytes"
    assert codec.encode(HttpResponse(200, b"body", head_only=True)).endswith(b"Content-Length: 4\r\n\r\n")
    with pytest.raises(errors.LocalProtocolError):
        codec.encode(HttpResponse(999))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(1, 50))
def test_any_bytes_give_requests_or_protocol_error(data: bytes, chunk: int) -> None:
    with contextlib.suppress(errors.ProtocolError):
        decode(data, chunk, HttpRequest(max_head=200, max_body=100))
