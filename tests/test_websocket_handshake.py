"""The WebSocket opening handshake (socketkit.codecs.websocket_handshake), each side against
wsproto's other side, and the statuses a bad upgrade gets."""

from __future__ import annotations

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request

from socketkit.codecs import HttpRequest
from socketkit.codecs.websocket_handshake import (
    HandshakeRefused,
    accept_key,
    check_response,
    client_request,
    new_key,
    server_response,
)
from socketkit.errors import RemoteProtocolError


def decoded(request: bytes) -> object:
    [message] = HttpRequest().decoder().feed(request)
    return message


def split_response(data: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    status = int(head[0].split(b" ")[1])
    fields = [tuple(part.strip() for part in line.split(b":", 1)) for line in head[1:]]
    return status, [(name.lower(), value) for name, value in fields]


def test_the_rfcs_own_example_key() -> None:
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3


def test_wsprotos_client_accepts_our_answer_with_the_subprotocol_we_chose() -> None:
    client = WSConnection(ConnectionType.CLIENT)
    request = client.send(Request(host="example.com", target="/chat", subprotocols=["v2.chat", "v1.chat"]))
    response, chosen = server_response(decoded(request), ["v1.chat", "v2.chat"])  # type: ignore[arg-type]
    assert chosen == "v1.chat"  # ours is the order that counts
    client.receive_data(response)
    [event] = client.events()
    assert isinstance(event, AcceptConnection) and event.subprotocol == "v1.chat"


def test_our_client_request_is_accepted_by_wsproto_and_its_answer_checked() -> None:
    server = WSConnection(ConnectionType.SERVER)
    key = new_key()
    server.receive_data(
        client_request("127.0.0.1:8765", "/echo?x=1", key, origin="http://a", subprotocols=["p"])
    )
    [event] = server.events()
    assert isinstance(event, Request) and event.target == "/echo?x=1" and event.subprotocols == ["p"]
    status, headers = split_response(server.send(AcceptConnection(subprotocol="p")))
    assert check_response(status, headers, key, ["p"]) == "p"
    with pytest.raises(RemoteProtocolError, match="does not match our key"):
        check_response(status, headers, new_key(), ["p"])
    with pytest.raises(RemoteProtocolError, match="did not offer"):
        check_response(status, headers, key, ["q"])
    rejected = WSConnection(ConnectionType.SERVER)
    rejected.receive_data(client_request("h", "/", key))
    rejected.events()
    status, headers = split_response(rejected.send(RejectConnection(status_code=403)))
    with pytest.raises(RemoteProtocolError, match="refused the WebSocket upgrade: HTTP 403"):
        check_response(status, headers, key)


GOOD = {
    b"Host": b"h",
    b"Upgrade": b"websocket",
    b"Connection": b"keep-alive, Upgrade",
    b"Sec-WebSocket-Key": b"dGhlIHNhbXBsZSBub25jZQ==",
    b"Sec-WebSocket-Version": b"13",
}


def upgrade(method: bytes = b"GET", version: bytes = b"HTTP/1.1", **changes: bytes | None) -> bytes:
    fields = dict(GOOD)
    for name, value in changes.items():
        key = next(k for k in GOOD if k.decode().replace("-", "_").lower() == name)
        if value is None:
            del fields[key]
        else:
            fields[key] = value
    lines = [method + b" / " + version] + [name + b": " + value for name, value in fields.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "status", "said"),
    [
        (upgrade(method=b"POST"), 400, "is a GET"),
        (upgrade(version=b"HTTP/1.0"), 400, "needs HTTP/1.1"),
        (upgrade(upgrade=b"h2c"), 400, "no 'Upgrade: websocket'"),
        (upgrade(connection=None), 400, "no 'Connection: Upgrade'"),
        (upgrade(sec_websocket_version=b"8"), 426, "version 13"),
        (upgrade(sec_websocket_key=b"short"), 400, "16 bytes in base64"),
        (upgrade(sec_websocket_key=None), 400, "16 bytes in base64"),
    ],
)
def test_a_bad_upgrade_gets_its_status(request_bytes: bytes, status: int, said: str) -> None:
    with pytest.raises(HandshakeRefused, match=said) as caught:
        server_response(decoded(request_bytes))  # type: ignore[arg-type]
    assert caught.value.status == status
    assert caught.value.response.startswith(b"HTTP/1.1 %d " % status)
    if status == 426:
        assert b"\r\nSec-WebSocket-Version: 13\r\n" in caught.value.response


def test_header_tokens_are_matched_whole_and_without_case() -> None:
    response, _ = server_response(decoded(upgrade(upgrade=b"WebSocket", connection=b"UPGRADE")))  # type: ignore[arg-type]
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    with pytest.raises(HandshakeRefused):
        server_response(decoded(upgrade(connection=b"upgraded")))  # type: ignore[arg-type]
