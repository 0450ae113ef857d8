"""WebSocket frames (socketkit.codecs.websocket_frames): every rule of RFC 6455 §5 with the
close code it answers, the same messages whole or split anywhere, and wsproto as an oracle
for hostile frames (what it refuses is refused, with the same code)."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from wsproto.frame_protocol import FrameProtocol, Opcode, ParseFailed

from socketkit.codecs.websocket_frames import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    Close,
    FrameReader,
    Ping,
    Pong,
    WebSocketError,
    WebSocketTooBig,
    close_payload,
    frame,
    mask,
)
from socketkit.errors import LimitExceeded, RemoteProtocolError

MiB = 1 << 20


def server_reader(max_message: int = MiB) -> FrameReader:
    return FrameReader(masked=True, max_message=max_message)


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return frame(opcode, payload, fin=fin, masked=True)


def raw_frame(
    first: int, payload: bytes, *, key: bytes | None = b"\x01\x02\x03\x04", length: bytes | None = None
) -> bytes:
    """A frame byte by byte, for the ones frame() will not make."""
    size = len(payload)
    if length is None:
        length = bytes((size,)) if size < 126 else struct.pack("!BH", 126, size)
    flag = 0x80 if key is not None else 0
    head = bytes((first, flag | length[0])) + length[1:]
    return head + (key + mask(payload, key) if key is not None else payload)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
@pytest.mark.parametrize("masked", [True, False])
def test_a_message_of_any_length_comes_through_masked_or_not(size: int, masked: bool) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    reader = FrameReader(masked=masked, max_message=MiB)
    assert reader.feed(frame(BINARY, payload, masked=masked)) == [payload]
    text = "é" * (size // 2)  # (two bytes each: a text of the same length in UTF-8)
    assert reader.feed(frame(TEXT, text.encode(), masked=masked)) == [text]
    assert reader.buffered == 0


def test_fragments_join_with_control_frames_between_them() -> None:
    data = (
        client_frame(TEXT, b"fragm", fin=False)
        + client_frame(PING, b"are you there")
        + client_frame(CONTINUATION, b"ent", fin=False)
        + client_frame(PONG, b"")
        + client_frame(CONTINUATION, "ed ✓".encode())
        + client_frame(BINARY, b"\x00\xff")
    )
    assert server_reader().feed(data) == [Ping(b"are you there"), Pong(b""), "fragmented ✓", b"\x00\xff"]


def test_a_character_split_between_fragments_is_one_character() -> None:
    euro = "€".encode()
    data = client_frame(TEXT, euro[:1], fin=False) + client_frame(CONTINUATION, euro[1:], fin=False)
    data += client_frame(CONTINUATION, b"")
    assert server_reader().feed(data) == ["€"]


def test_close_frames_and_nothing_after_them() -> None:
    reader = server_reader()
    data = client_frame(CLOSE, close_payload(1001, "going away")) + client_frame(TEXT, b"late")
    assert reader.feed(data) == [Close(1001, "going away")]
    assert reader.closed and reader.feed(client_frame(TEXT, b"later")) == []
    assert server_reader().feed(client_frame(CLOSE, b"")) == [Close(1005, "")]


BAD = [
    (raw_frame(0x83, b"x"), 1002, "unknown opcode 0x3"),
    (raw_frame(0x8B, b"x"), 1002, "unknown opcode 0xb"),
    (raw_frame(0x09, b"x"), 1002, "may not be fragmented"),
    (raw_frame(0x89, b"x" * 126), 1002, "125 bytes at most"),
    (raw_frame(0x82, b"x" * 5, length=struct.pack("!BH", 126, 5)), 1002, "where 1 would do"),
    (raw_frame(0x82, b"x", length=struct.pack("!BQ", 127, 1)), 1002, "where 2 would do"),
    (raw_frame(0x82, b"", length=struct.pack("!BQ", 127, 1 << 63)), 1002, "top bit set"),
    (raw_frame(0xC2, b"x"), 1002, "reserved bits"),
    (raw_frame(0x92, b"x"), 1002, "reserved bits"),
    (raw_frame(0x82, b"x", key=None), 1002, "must be masked"),
    (client_frame(CONTINUATION, b"x"), 1002, "no message begun"),
    (client_frame(TEXT, b"a", fin=False) + client_frame(BINARY, b"b"), 1002, "before the last one's final"),
    (client_frame(CLOSE, b"\x03"), 1002, "2 bytes, not 1"),
    (client_frame(CLOSE, struct.pack("!H", 1005)), 1002, "close code 1005"),
    (client_frame(CLOSE, struct.pack("!H", 999)), 1002, "close code 999"),
    (client_frame(CLOSE, struct.pack("!H", 2000)), 1002, "close code 2000"),
    (client_frame(CLOSE, struct.pack("!H", 5000)), 1002, "close code 5000"),
    (client_frame(TEXT, b"\xff"), 1007, "not UTF-8"),
    (client_frame(TEXT, b"\xed\xa0\x80"), 1007, "not UTF-8"),  # a surrogate
    (client_frame(TEXT, "€".encode()[:2]), 1007, "not UTF-8"),  # cut short at the message's end
    (client_frame(CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007, "reason that is not UTF-8"),
]


@pytest.mark.parametrize(("data", "code", "said"), BAD, ids=[said for _, _, said in BAD])
def test_each_broken_rule_is_refused_with_its_close_code(data: bytes, code: int, said: str) -> None:
    good = client_frame(TEXT, b"before")
    with pytest.raises(WebSocketError, match=said) as caught:
        server_reader().feed(good + data)
    assert caught.value.code == code
    assert caught.value.messages == ["before"]  # what came before the bad frame is kept


def test_a_server_frame_must_not_be_masked() -> None:
    with pytest.raises(WebSocketError, match="must not be masked"):
        FrameReader(masked=False, max_message=MiB).feed(client_frame(TEXT, b"x"))


def test_invalid_text_is_refused_when_its_bytes_arrive_not_at_the_message_end() -> None:
    reader = server_reader()
    head = client_frame(TEXT, b"ok \xff" + b"x" * 1000, fin=False)
    with pytest.raises(WebSocketError) as caught:
        reader.feed(head[:20])  # the frame, and the message, are far from complete
    assert caught.value.code == 1007


def test_a_message_over_the_limit_is_refused_from_its_header() -> None:
    reader = server_reader(max_message=1000)
    assert reader.feed(client_frame(TEXT, b"x" * 600, fin=False)) == []
    header = client_frame(CONTINUATION, b"x" * 500)[:8]  # no payload sent yet
    with pytest.raises(WebSocketTooBig) as caught:
        reader.feed(header)
    assert caught.value.code == 1009 and isinstance(caught.value, LimitExceeded)
    with pytest.raises(WebSocketTooBig):  # an 8 EiB frame is refused without waiting for it
        server_reader().feed(raw_frame(0x82, b"", length=struct.pack("!BQ", 127, 1 << 62)))


def test_the_stream_ending_inside_a_frame_or_a_message_is_an_error() -> None:
    for data in [client_frame(TEXT, b"hello")[:4], client_frame(TEXT, b"he", fin=False)]:
        reader = server_reader()
        reader.feed(data)
        with pytest.raises(RemoteProtocolError, match="ended inside"):
            reader.feed(b"")
    assert server_reader().feed(b"") == []


def test_close_payload_refuses_what_may_not_be_sent() -> None:
    assert close_payload(1000, "bye") == b"\x03\xe8bye"
    assert close_payload() == b""
    for code, reason, said in [
        (1005, "", "not one an endpoint may send"),
        (None, "why", "needs a close code"),
    ]:
        with pytest.raises(ValueError, match=said):
            close_payload(code, reason)
    with pytest.raises(ValueError, match="123 bytes"):
        close_payload(1000, "x" * 124)


# -- whole or split, and beside wsproto --------------------------------------------------------

#: one frame of a hostile stream: first byte (FIN, RSV, opcode), a payload, how its length is
#: written (shortest, or a longer form), and whether it is masked
frames = st.tuples(
    st.sampled_from([0x80, 0x80, 0x00]),
    st.sampled_from([0x00] * 12 + [0x40, 0x10]),  # (each defect rare, so most streams go far)
    st.sampled_from([0, 1, 1, 2, 2, 8, 9, 10] * 4 + [3, 0xB]),
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=60).map(str.encode),
        st.sampled_from([b"\xff", b"\xe2\x82", b"\xed\xa0\x80", "€".encode()]),
        # close payloads: codes around every boundary (not 1014, which wsproto alone refuses)
        st.tuples(
            st.sampled_from(
                [999, 1000, 1001, 1003, 1004, 1005, 1006, 1011, 1013, 1015, 2999, 3000, 4999, 5000]
            ),
            st.sampled_from([b"", b"bye", b"\xff"]),
        ).map(lambda cr: struct.pack("!H", cr[0]) + cr[1]),
    ),
    st.sampled_from(["short"] * 12 + ["long"]),
    st.sampled_from([True] * 12 + [False]),
)


def build(parts: list[tuple[int, int, int, bytes, str, bool]]) -> bytes:
    data = b""
    for fin, rsv, opcode, payload, form, masked in parts:
        size = len(payload)
        if form == "long" or size >= 126:
            length = struct.pack("!BH", 126, size) if size < 65536 else struct.pack("!BQ", 127, size)
        else:
            length = bytes((size,))
        data += raw_frame(
            fin | rsv | opcode, payload, key=b"\x9a\x0b\x3c\x4d" if masked else None, length=length
        )
    return data


def ours(chunks: list[bytes]) -> tuple[list[Any], int | None]:
    reader = server_reader()
    got: list[Any] = []
    for chunk in chunks:
        try:
            got += reader.feed(chunk)
        except WebSocketError as exc:
            return got + exc.messages, exc.code
    return got, None


def theirs(data: bytes) -> tuple[list[Any], int | None]:
    """wsproto's reading of a client's stream, in our shapes."""
    protocol = FrameProtocol(client=False, extensions=[])
    protocol.receive_bytes(data)
    got: list[Any] = []
    parts: list[Any] = []
    try:
        for event in protocol.received_frames():
            if event.opcode is Opcode.PING:
                got.append(Ping(bytes(event.payload)))
            elif event.opcode is Opcode.PONG:
                got.append(Pong(bytes(event.payload)))
            elif event.opcode is Opcode.CLOSE:
                code, reason = event.payload
                got.append(Close(int(code), reason))
            else:
                parts.append(event.payload)
                if event.message_finished:
                    joined = "".join(parts) if isinstance(parts[0], str) else b"".join(parts)
                    got.append(joined)
                    parts = []
    except ParseFailed as exc:
        return got, int(exc.code)
    return got, None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames, max_size=6), st.data())
def test_split_anywhere_gives_the_same_messages_and_error(parts: Any, data: st.DataObject) -> None:
    stream = build(parts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert ours([c for c in chunks if c]) == ours([stream])
    assert ours(list(map(bytes, zip(stream, strict=False)))) == ours([stream])  # byte by byte


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames, max_size=6))
def test_wsproto_and_we_read_hostile_frames_alike(parts: Any) -> None:
    stream = build(parts)
    verdict = ours([stream])
    assert verdict == theirs(stream)
    event(f"close code {verdict[1]}")


def test_empty_first_fragments_leave_nothing_behind_for_the_next_message() -> None:
    # (a whole frame is decoded at once; a text message begun in pieces must not make the
    # binary message after it text)
    data = (
        client_frame(TEXT, b"", fin=False)
        + client_frame(CONTINUATION, b"abc")
        + client_frame(BINARY, b"\xff\xfe")
        + client_frame(BINARY, b"\xff", fin=False)
        + client_frame(CONTINUATION, b"\xfe")
    )
    assert server_reader().feed(data) == ["abc", b"\xff\xfe", b"\xff\xfe"]
