"""For every codec: decoding bytes whole and decoding them split anywhere give the same
messages, or the same error after the same messages.

A decoder that depends on how reads split the stream answers the same client
differently from one run to the next, and lets a fuzzer find requests that
parse two ways (the request-smuggling shape). Raw is left out on purpose: its
message is one read, so how the stream is split is what it returns.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from socketkit import errors
from socketkit.codecs import Codec, HttpRequest, Json, LengthPrefixed, Lines, Msgpack

CODECS: list[Codec] = [
    Lines(max_length=16),
    Lines(b"\r\n", max_length=16),
    LengthPrefixed(1, max_length=16),
    LengthPrefixed(4, max_length=32),
    Json(Lines(max_length=48)),
    Json(LengthPrefixed(2, max_length=48)),
    Msgpack(LengthPrefixed(2, max_length=48)),
    HttpRequest(max_head=64, max_body=16),
]

#: Pieces that reach the decoders' interesting states far more often than random bytes do.
FRAGMENTS = [
    b"\n", b"\r\n", b"\r", b"\n\r\n", b"\x00", b"\x00\x03", b"\x00\x00\x00\x04", b"\xff\xff",
    b"good", b'{"a":1}', b"[1,2]", b"NaN", b"\x91\x01", b"\x90",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"GET /x HTTP/1.0\n\n", b"POST / HTTP/1.1\r\nHost: a\r\n",
    b"Content-Length: 3\r\n", b"Content-Length: 0\r\n", b"Expect: 100-continue\r\n", b"Host: b\r\n",
    b"X: \x01\r\n", b" folded\r\n", b"HTTP/1.1", b" ", b"GET",
]  # fmt: skip

streams = st.lists(st.sampled_from(FRAGMENTS) | st.binary(max_size=12), max_size=12).map(b"".join)


def outcome(codec: Codec, chunks: list[bytes]) -> tuple[list[Any], str | None]:
    """The messages decoded from ``chunks`` then the end of stream, and the error, if any."""
    decoder = codec.decoder()
    messages: list[Any] = []
    try:
        for chunk in [*chunks, b""]:
            messages += decoder.feed(chunk)
    except errors.ProtocolError as exc:
        assert isinstance(exc, errors.RemoteProtocolError), exc
        return messages + exc.messages, f"{type(exc).__name__}: {exc}"
    return messages, None


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut for cut in cuts if cut <= len(data))})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@settings(max_examples=400, deadline=None)
@given(data=streams, cuts=st.lists(st.integers(0, 150), max_size=6))
@example(data=b"GET /1 HTTP/1.1\nHost: a\n\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", cuts=[26])
@example(data=b"\x00\x00\x00\x04good\xff\xff\xff\xff", cuts=[2])
@pytest.mark.parametrize("codec", CODECS, ids=repr)
def test_whole_and_split_decode_alike(codec: Codec, data: bytes, cuts: list[int]) -> None:
    assert outcome(codec, split(data, cuts)) == outcome(codec, [data])


@pytest.mark.parametrize("codec", CODECS, ids=repr)
@pytest.mark.parametrize(
    "data",
    [
        b"GET /1 HTTP/1.1\nHost: a\n\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"y" * 80 + b"\r\n\r\n",
        b"\x00\x00\x00\x04good\x00\x00\x00\x02ok\xff\xff\xff\xff",
        b'{"a":1}\n[1,2]\n' + b"9" * 60 + b"\n",
        b"\x00\x02\x91\x01\x00\x01\x90\x00\x02\xc1\x00",
        b"good\nbetter\r\n" + b"x" * 40 + b"\n",
    ],
    ids=["http-lf-then-crlf", "http-body-pipelined", "http-long-head", "length", "json", "msgpack", "lines"],
)
def test_every_single_split_point(codec: Codec, data: bytes) -> None:
    whole = outcome(codec, [data])
    for cut in range(1, len(data)):
        assert outcome(codec, [data[:cut], data[cut:]]) == whole, cut
    assert outcome(codec, [data[i : i + 1] for i in range(len(data))]) == whole
