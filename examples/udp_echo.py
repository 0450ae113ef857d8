"""UDP echo: a server answers each datagram; a client resends if one is lost."""

import socketkit as sk


def echo(message: bytes, conn: sk.Connection) -> bytes:
    return message


with sk.Server("udp://127.0.0.1:0", echo).start() as server:
    with sk.DatagramClient(server.url, timeout=1, retries=3) as client:
        for text in (b"one datagram", b"another"):
            print(client.request(text).decode())
