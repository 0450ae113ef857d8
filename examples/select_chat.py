"""A chat room on the select() engine: a Protocol shared by every connection.

Run it, then connect with two terminals: `nc 127.0.0.1 8899` (or telnet).
Every line from one member goes to every other member.
"""

import logging
import sys

import socketkit as sk


class ChatRoom(sk.Protocol):
    def __init__(self) -> None:
        self.members: set[sk.Connection] = set()

    def on_connect(self, conn: sk.Connection) -> None:
        self.broadcast(conn, b"* %s joined" % conn.peer_url.encode())
        self.members.add(conn)
        conn.send(b"* welcome; %d other(s) here" % (len(self.members) - 1))

    def on_message(self, conn: sk.Connection, message: bytes) -> None:
        self.broadcast(conn, b"%s: %s" % (conn.peer_url.encode(), message))

    def on_close(self, conn: sk.Connection, error: BaseException | None) -> None:
        self.members.discard(conn)
        self.broadcast(conn, b"* %s left" % conn.peer_url.encode())

    def broadcast(self, sender: sk.Connection, line: bytes) -> None:
        for member in self.members:
            if member is not sender and not member.closed:
                member.send(line)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    url = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:8899"
    sk.Server(url, ChatRoom(), codec=sk.Lines(), engine="select").serve_forever()
