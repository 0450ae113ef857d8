"""Codec contract tests (DESIGN §5): chunking invariance, fuzzing, limits."""

from __future__ import annotations

import contextlib
import itertools
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from socketkit import errors
from socketkit.codecs import Codec, Json, LengthPrefixed, Lines, Msgpack, Raw

FRAMED: list[Codec] = [
    Lines(),
    Lines(b"\r\n"),
    Lines(b"\0", max_length=100),
    LengthPrefixed(),
    LengthPrefixed(header_size=1),
    LengthPrefixed(header_size=2),
    LengthPrefixed(header_size=8),
]
STRUCTURED: list[Codec] = [Json(), Json(LengthPrefixed()), Msgpack(), Msgpack(LengthPrefixed(2))]
ALL: list[Codec] = [Raw(), *FRAMED, *STRUCTURED]

BYTE_MESSAGES = [b"hello", b"", b"x" * 90, b"tab\tand\x01control"]
OBJECT_MESSAGES: list[Any] = [{"a": 1, "b": [1, 2.5, None, True]}, [], "text é", 42, {"nested": {"k": "v"}}]


def messages_for(codec: Codec) -> list[Any]:
    if isinstance(codec, (Json, Msgpack)):
        return OBJECT_MESSAGES
    return BYTE_MESSAGES


def feed_chunks(codec: Codec, chunks: Iterator[bytes] | list[bytes]) -> list[Any]:
    decoder = codec.decoder()
    out: list[Any] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    out.extend(decoder.feed(b""))
    return out


def random_chunks(data: bytes, rng: random.Random) -> list[bytes]:
    chunks, i = [], 0
    while i < len(data):
        n = rng.randint(1, 17)
        chunks.append(data[i : i + n])
        i += n
    return chunks


@pytest.mark.parametrize("codec", [c for c in ALL if not isinstance(c, Raw)], ids=repr)
def test_whole_bytewise_and_random_chunks_agree(codec: Codec) -> None:
    messages = messages_for(codec)
    stream = b"".join(codec.encode(m) for m in messages)
    whole = feed_chunks(codec, [stream])
    bytewise = feed_chunks(codec, [stream[i : i + 1] for i in range(len(stream))])
    rng = random.Random(1234)
    for _ in range(20):
        assert feed_chunks(codec, random_chunks(stream, rng)) == whole
    assert whole == bytewise == messages


def test_raw_passes_chunks_through() -> None:
    decoder = Raw().decoder()
    assert decoder.feed(b"abc") == [b"abc"]
    assert decoder.feed(b"") == []
    assert Raw().encode(bytearray(b"xy")) == b"xy"


def test_lines_strips_crlf_and_keeps_partial() -> None:
    decoder = Lines().decoder()
    assert decoder.feed(b"one\r\ntwo\nthr") == [b"one", b"two"]
    assert decoder.buffered == 3
    assert decoder.feed(b"ee\r") == []
    assert decoder.feed(b"\n") == [b"three"]
    assert decoder.buffered == 0


def test_lines_multibyte_delimiter_split_across_feeds() -> None:
    decoder = Lines(b"\r\n").decoder()
    assert decoder.feed(b"a\r") == []
    assert decoder.feed(b"\nb\r\n") == [b"a", b"b"]


def test_lines_refuses_to_encode_the_delimiter_or_str() -> None:
    with pytest.raises(errors.LocalProtocolError):
        Lines().encode(b"two\nlines")
    with pytest.raises(TypeError, match="encode"):
        Lines().encode("text")


@pytest.mark.parametrize("codec", [Lines(), LengthPrefixed(), Json(), Msgpack()], ids=repr)
def test_end_of_stream_mid_frame_is_a_remote_error(codec: Codec) -> None:
    frame = codec.encode(b"partial" if not isinstance(codec, (Json, Msgpack)) else {"k": "v"})
    decoder = codec.decoder()
    assert decoder.feed(frame[:-1]) == []
    with pytest.raises(errors.RemoteProtocolError):
        decoder.feed(b"")


@pytest.mark.parametrize(
    "codec",
    [Lines(max_length=1 << 20), LengthPrefixed(max_length=1 << 20), Json(Lines(max_length=1 << 20))],
    ids=repr,
)
def test_oversize_raises_as_soon_as_limit_is_crossed(codec: Codec) -> None:
    """A 100 MB stream with no frame end: raises within one chunk of the limit."""
    chunk = 64 * 1024
    header = b"" if not isinstance(codec, LengthPrefixed) else (100 * 1024 * 1024).to_bytes(4, "big")
    decoder = codec.decoder()
    fed = 0
    payload = b"a" * chunk
    with pytest.raises(errors.LimitExceeded):
        decoder.feed(header)
        for _ in range(100 * 1024 * 1024 // chunk):
            decoder.feed(payload)
            fed += chunk
            assert decoder.buffered <= (1 << 20) + 2
    assert fed <= (1 << 20) + chunk


def test_length_prefixed_header_checked_before_body() -> None:
    decoder = LengthPrefixed(max_length=10).decoder()
    with pytest.raises(errors.LimitExceeded):
        decoder.feed((11).to_bytes(4, "big"))


def test_server_limit_lowers_codec_limit() -> None:
    decoder = Lines(max_length=100).decoder(max_length=5)
    with pytest.raises(errors.LimitExceeded):
        decoder.feed(b"123456\n")
    assert Lines(max_length=4).decoder(max_length=100).feed(b"1234\n") == [b"1234"]


def test_length_prefixed_refuses_oversize_encode() -> None:
    with pytest.raises(errors.LocalProtocolError):
        LengthPrefixed(header_size=1).encode(b"x" * 256)


@pytest.mark.parametrize("codec", [Json(), Msgpack()], ids=repr)
def test_structured_refuses_unserializable(codec: Codec) -> None:
    with pytest.raises(errors.LocalProtocolError):
        codec.encode({"obj": object()})


def test_json_is_compact_and_strict() -> None:
    assert Json().encode({"a": [1, "é"]}) == '{"a":[1,"é"]}\n'.encode()
    with pytest.raises(errors.LocalProtocolError):
        Json().encode(float("nan"))
    with pytest.raises(errors.RemoteProtocolError):
        Json().decoder().feed(b"{not json}\n")
    with pytest.raises(errors.RemoteProtocolError):
        Json().decoder().feed(b"[" * 100_000 + b"\n")


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"NaN", "NaN is not JSON"),
        (b"[1, -Infinity]", "-Infinity is not JSON"),
        (b"1e999999", "out of range"),
        (b'{"a": [-1e400]}', "out of range"),
        (b'"\\ud800"', "lone surrogate"),
        (b'{"k\\udfff": 1}', "lone surrogate"),
        (b'"\xed\xa0\x80"', "UTF-8"),
        ('"\x00a\x00"'.encode("utf-16-le"), "invalid json"),
    ],
)
def test_json_decodes_only_what_it_could_encode(frame: bytes, reason: str) -> None:
    """Python's parser takes NaN, overflowing numbers, lone surrogates and UTF-16; strict JSON does not."""
    decoder = Json().decoder()
    with pytest.raises(errors.RemoteProtocolError, match=reason) as info:
        decoder.feed(b'{"ok":1}\n' + frame + b"\n")
    assert info.value.messages == [{"ok": 1}]
    assert Json().decoder().feed(b'["\\ud83d\\ude00", "\\\\ud800", 1e308]\n') == [
        ["\U0001f600", "\\ud800", 1e308]
    ]


@pytest.mark.parametrize("codec", ALL, ids=repr)
def test_datagrams_round_trip(codec: Codec) -> None:
    for message in messages_for(codec):
        assert codec.decode_datagram(codec.encode(message)) == message


def test_lines_datagram_without_delimiter_is_one_message() -> None:
    assert Lines().decode_datagram(b"hello") == b"hello"
    assert Lines().decode_datagram(b"hello\r\n") == b"hello"
    with pytest.raises(errors.LimitExceeded):
        Lines(max_length=3).decode_datagram(b"hello")


def test_length_prefixed_datagram_must_be_exact() -> None:
    with pytest.raises(errors.RemoteProtocolError):
        LengthPrefixed().decode_datagram(b"\0\0\0\x05abc")
    with pytest.raises(errors.RemoteProtocolError):
        LengthPrefixed().decode_datagram(b"\0\0")


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="header_size"):
        LengthPrefixed(header_size=3)
    with pytest.raises(ValueError, match="delimiter"):
        Lines(b"")
    with pytest.raises(ValueError, match="max_length"):
        Lines(max_length=0)
    with pytest.raises(TypeError, match="framing"):
        Json(Json())
    with pytest.raises(TypeError, match="LengthPrefixed"):
        Msgpack(Lines())


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=2000), cuts=st.lists(st.integers(0, 2000), max_size=8))
@pytest.mark.parametrize("codec", ALL, ids=repr)
def test_any_bytes_give_messages_or_protocol_error(codec: Codec, data: bytes, cuts: list[int]) -> None:
    decoder = codec.decoder(max_length=500)
    points = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    with contextlib.suppress(errors.ProtocolError):
        for a, b in itertools.pairwise(points):
            decoder.feed(data[a:b])
        decoder.feed(b"")
    with contextlib.suppress(errors.ProtocolError):
        codec.decode_datagram(data, max_length=500)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300).filter(lambda b: b"\n" not in b), max_size=20), st.randoms())
def test_lines_property_round_trip(messages: list[bytes], rng: random.Random) -> None:
    codec = Lines()
    stream = b"".join(codec.encode(m) for m in messages)
    expected = [m[:-1] if m.endswith(b"\r") else m for m in messages]
    assert feed_chunks(codec, random_chunks(stream, rng)) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(json_values, max_size=10), st.randoms())
@pytest.mark.parametrize("codec", STRUCTURED, ids=repr)
def test_structured_property_round_trip(codec: Codec, values: list[Any], rng: random.Random) -> None:
    stream = b"".join(codec.encode(v) for v in values)
    assert feed_chunks(codec, random_chunks(stream, rng)) == json.loads(json.dumps(values))


def test_codecs_import_no_io_modules() -> None:
    """Sans-IO: no codec module imports socket, selectors, ssl or threading (but a Lock, which
    guards the item budget that connections on many threads share)."""
    import ast
    from pathlib import Path

    import socketkit.codecs

    forbidden = {"socket", "selectors", "ssl", "threading", "asyncio", "select"}
    for path in Path(socketkit.codecs.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module == "threading" and [alias.name for alias in node.names] == ["Lock"]:
                    continue
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


def test_counting_the_values_of_a_long_escaped_json_string_takes_no_more_than_its_size() -> None:
    """A legal 1 MiB string of \\u escapes: counting its values once took 147 MiB (a regex that
    remembered each character of the string); now the peak is a few copies of the frame."""
    import tracemalloc

    frame = b'"' + b"\\u0041" * 175_000 + b'"'  # 1.05 MB, one value
    codec = Json(LengthPrefixed(max_length=2 << 20))
    decoder = codec.decoder()
    tracemalloc.start()
    try:
        (message,) = decoder.feed(codec.framing.encode(frame))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message == "A" * 175_000
    assert peak < 12 * len(frame), f"{peak / 2**20:.1f} MiB to decode a {len(frame) / 2**20:.1f} MiB frame"
    tricky = [{"a\\": '\\"[{,:', "b": ['\\"', ":"]}, "x\\\\", [[]]]  # escapes beside separators
    encoded = codec.encode(tricky)
    assert codec.decoder().feed(encoded) == [tricky]
    # one for the whole, one for each [ and { opened, each comma and each colon outside strings
    assert codec._count_items(encoded[4:], 10**6) == 1 + 4 + 1 + 4 + 2


@pytest.mark.parametrize("codec", [Msgpack(), Json(LengthPrefixed())], ids=repr)
def test_a_message_that_decodes_to_too_many_values_is_refused(codec: Codec) -> None:
    """A 1 MiB frame of empty arrays is a million lists (about 64 MiB): refused, not decoded."""
    payload = b"\xdd" + (1 << 20).to_bytes(4, "big") + b"\x90" * (1 << 20)
    if isinstance(codec, Json):
        payload = b"[" + b"[]," * 350_000 + b"[]]"
    decoder = codec.decoder()
    with pytest.raises(errors.LimitExceeded, match=r"\(max_items\)") as info:
        decoder.feed(
            codec.framing.encode(b"[1]" if isinstance(codec, Json) else b"\x91\x01")
            + codec.framing.encode(payload)
        )  # type: ignore[attr-defined]
    assert info.value.messages == [[1]]
    wide = list(range(90_000))  # under the bound: decodes
    assert codec.decoder().feed(codec.encode(wide)) == [wide]


def test_values_held_by_all_connections_are_bounded_and_released() -> None:
    codec = Json(max_items=10, max_items_total=25)  # a frame of n bytes holds at most n values
    frame = codec.encode([1, 2, 3, 4])  # 9 bytes and a newline
    first, second, third = codec.decoder(), codec.decoder(), codec.decoder()
    assert first.feed(frame) == [[1, 2, 3, 4]]
    assert second.feed(frame) == [[1, 2, 3, 4]]
    with pytest.raises(errors.LimitExceeded, match="max_items_total"):
        third.feed(frame)
    first.release()  # its message was handled
    assert third.feed(frame) == [[1, 2, 3, 4]]
    second.feed(b"")  # reading again also lets go of what it decoded before
    with pytest.raises(errors.LimitExceeded, match=r"\(max_items\)"):
        codec.decoder().feed(codec.encode(list(range(10))))  # 21 bytes, 11 values


def _values_and_depth(value: Any) -> tuple[int, int]:
    if isinstance(value, list):
        inner = [_values_and_depth(v) for v in value]
    elif isinstance(value, dict):
        inner = [_values_and_depth(v) for v in value.values()] + [(len(value), 0)]
    else:
        return 1, 0
    return 1 + sum(n for n, _ in inner), 1 + max((d for _, d in inner), default=0)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_msgpack_shape_counts_values_and_depth_without_decoding(value: Any) -> None:
    import msgspec

    from socketkit.codecs.msgpack import _shape

    assert _shape(msgspec.msgpack.encode(value), 1 << 40, 1 << 40) == _values_and_depth(value)
