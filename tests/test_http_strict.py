"""HttpRequest is as strict as h11: the corpus in tests/data, and h11 as an oracle.

Each corpus case says which targets are answered and the status that refuses
the rest (or null). Every case is decoded whole, a byte at a time and split at
every point, and h11 gives its own verdict beside ours: whatever h11 refuses we
refuse, and whatever we accept h11 accepts as the same requests. We are
stricter in a few places on purpose (control characters in values, obsolete
line folding, Transfer-Encoding, comma lists in Content-Length).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socketkit import errors
from socketkit.codecs.http import HttpError, HttpRequest, HttpResponse, render_response

CORPUS = json.loads((Path(__file__).parent / "data" / "http_requests.json").read_text())
Outcome = tuple[list[tuple[bytes, bytes, bytes]], int | None]


def ours(chunks: list[bytes]) -> Outcome:
    decoder = HttpRequest().decoder()
    requests: list[Any] = []
    status = None
    try:
        for chunk in [*chunks, b""]:
            requests += decoder.feed(chunk)
    except HttpError as exc:
        requests += exc.messages
        status = exc.status
    return [(r.method, r.target, r.body) for r in requests], status


def h11_verdict(data: bytes) -> Outcome:
    """What h11 0.14+ makes of ``data`` as a server: the requests, and its error status
    (-1: it stopped reading after a request that does not keep the connection alive)."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=8192)
    conn.receive_data(data)
    conn.receive_data(b"")
    requests: list[tuple[bytes, bytes, bytes]] = []
    current: list[bytes] = []
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                current = [event.method, event.target, b""]
            elif isinstance(event, h11.Data):
                current[2] += event.data
            elif isinstance(event, h11.EndOfMessage):
                requests.append((current[0], current[1], current[2]))
                conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                conn.send(h11.EndOfMessage())
                if conn.our_state is h11.MUST_CLOSE:  # not keep-alive: h11 reads no further
                    return requests, -1
                conn.start_next_cycle()
            else:  # NEED_DATA after the end: cut off mid-request; ConnectionClosed: clean
                return requests, None if isinstance(event, h11.ConnectionClosed) else 400
    except h11.RemoteProtocolError as exc:
        return requests, exc.error_status_hint


def agrees_with_h11(data: bytes, verdict: Outcome) -> None:
    requests, status = verdict
    theirs, their_status = h11_verdict(data)
    if their_status == -1:  # what follows a closing request is never answered: compare up to it
        requests, status, their_status = requests[: len(theirs)], None, None
    if their_status is not None:  # h11 refuses: so do we, no later than it does
        assert status is not None, (data, theirs, their_status)
        assert len(requests) <= len(theirs)
    assert requests == theirs[: len(requests)], data  # what we accept, h11 reads the same way


@pytest.mark.parametrize("case", CORPUS, ids=[case["name"] for case in CORPUS])
def test_corpus(case: dict[str, Any]) -> None:
    data = case["request"].encode("latin-1")
    whole = ours([data])
    assert [target.decode("latin-1") for _, target, _ in whole[0]] == case["targets"]
    assert whole[1] == case["status"]
    assert ours([data[i : i + 1] for i in range(len(data))]) == whole
    for cut in range(1, len(data)):
        assert ours([data[:cut], data[cut:]]) == whole, cut
    agrees_with_h11(data, whole)


TARGET_CHARS = st.sampled_from([*"/az?=%", "\x00", "\x01", "\t", "\xff", "\r", "\n", " ", "\x7f"])
VALUE_CHARS = st.sampled_from([*"az ,", "\t", "\x00", "\x01", "\x7f", "\xff", "\r", "\n"])
NAMES = st.sampled_from(["Host", "host", "Content-Length", "Connection", "X-A", "Bad Name", "Expect", ""])


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "G@T", "", "HEAD"]))
    target = "/" + "".join(draw(st.lists(TARGET_CHARS, max_size=4)))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "http/1.1", "HTTP/1.1 "]))
    end = draw(st.sampled_from(["\r\n", "\n", "\r\r\n"]))
    lines = [f"{method} {target} {version}"]
    for _ in range(draw(st.integers(0, 4))):
        name = draw(NAMES)
        if name == "Content-Length":
            value = draw(st.sampled_from(["0", "3", "29", "+3", "3, 3", "", " 3 "]))
        else:
            value = "".join(draw(st.lists(VALUE_CHARS, max_size=4)))
        lines.append(f"{name}:{value}")
    body = draw(st.sampled_from(["", "abc", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"]))
    return (end.join(lines) + end + end + body).encode("latin-1")


@settings(max_examples=500, deadline=None)
@given(st.lists(requests(), min_size=1, max_size=2).map(b"".join), st.integers(0, 200))
def test_generated_requests_agree_with_h11_and_with_themselves_split(data: bytes, cut: int) -> None:
    whole = ours([data])
    assert ours([data[:cut], data[cut:]]) == whole
    agrees_with_h11(data, whole)


def test_connection_tokens_are_matched_whole() -> None:
    def keep_alive(version: bytes, value: bytes) -> bool:
        [request] = (
            HttpRequest()
            .decoder()
            .feed(b"GET / " + version + b"\r\nHost: a\r\nConnection: " + value + b"\r\n\r\n")
        )
        return request.keep_alive

    assert keep_alive(b"HTTP/1.1", b"xclosex")
    assert keep_alive(b"HTTP/1.1", b"keep-alive, upgrade")
    assert not keep_alive(b"HTTP/1.1", b"upgrade, CLOSE")
    assert not keep_alive(b"HTTP/1.0", b"not-keep-alive")
    assert keep_alive(b"HTTP/1.0", b"Keep-Alive")


def test_expect_100_continue_is_answered_before_the_body() -> None:
    decoder = HttpRequest().decoder()
    head = b"POST /up HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
    assert decoder.feed(head) == []
    assert decoder.take_interim() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert decoder.take_interim() == b""  # once
    [request] = decoder.feed(b"abc")
    assert (request.body, request.expects_continue) == (b"abc", True)
    # The body already here, or a body over the limit: no 100 Continue.
    whole = HttpRequest().decoder()
    assert len(whole.feed(head + b"abc")) == 1 and whole.take_interim() == b""
    with pytest.raises(errors.LimitExceeded) as info:
        HttpRequest(max_body=2).decoder().feed(head)
    assert info.value.status == 413  # type: ignore[attr-defined]
    # HTTP/1.0 expectations are ignored, as RFC 9110 says.
    old = HttpRequest().decoder()
    old.feed(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
    assert old.take_interim() == b""


@pytest.mark.parametrize(
    "header",
    [
        ("Location", "/a\r\nSet-Cookie: evil=1"),
        ("Location", "/a\nb"),
        ("X", "a\x00b"),
        ("X-A\r\nB", "v"),
        ("Bad Name", "v"),
        ("", "v"),
        ("X", "snowman \u2603"),
    ],
)
def test_a_response_header_that_would_split_the_response_is_refused(header: tuple[str, str]) -> None:
    with pytest.raises(errors.LocalProtocolError):
        render_response(HttpResponse(200, b"", [header]))
    with pytest.raises(errors.LocalProtocolError):
        HttpRequest().encode(HttpResponse(200, b"", [header]))


def test_error_replies_say_what_was_wrong() -> None:
    with pytest.raises(HttpError) as info:
        HttpRequest().decoder().feed(b"GET / HTTP/1.1\r\n\r\n")
    reply = HttpRequest().error_reply(info.value)
    assert reply is not None
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert reply.endswith(b"\r\n\r\n400 Bad Request: HTTP/1.1 request without a Host header\n")
