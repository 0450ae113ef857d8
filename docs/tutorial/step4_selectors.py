"""Step 4: one thread, many clients, with select/poll/epoll (the selectors module).

Run: python step4_selectors.py [PORT]

No thread per client: the loop asks the kernel which sockets are ready and
serves each a little at a time. The price: nothing may block, so each
connection keeps its own buffers, and the reply is a whole line, not whatever
recv() returned.
"""

import selectors
import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 12345
selector = selectors.DefaultSelector()  # epoll on Linux, kqueue on BSD, select elsewhere


class Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = b""  # bytes of a line not complete yet
        self.unsent = b""  # replies the kernel has not taken yet


def accept(listener: socket.socket) -> None:
    sock, _ = listener.accept()
    sock.setblocking(False)
    selector.register(sock, selectors.EVENT_READ, Connection(sock))


def serve(conn: Connection, events: int) -> None:
    if events & selectors.EVENT_READ:
        try:
            data = conn.sock.recv(4096)
        except ConnectionError:
            data = b""
        if not data:  # closed (or broken): forget it
            selector.unregister(conn.sock)
            conn.sock.close()
            return
        conn.received += data
        *lines, conn.received = conn.received.split(b"\n")  # the framing: whole lines only
        conn.unsent += b"".join(line + b"\n" for line in lines)
    if conn.unsent:
        sent = conn.sock.send(conn.unsent)  # never blocks: takes what fits in the kernel buffer
        conn.unsent = conn.unsent[sent:]
    # Wait for "writable" only while replies are left over, or the loop would spin.
    wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.unsent else 0)
    selector.modify(conn.sock, wanted, conn)


listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen()
listener.setblocking(False)
selector.register(listener, selectors.EVENT_READ)
print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)

try:
    while True:
        for key, events in selector.select():
            if key.fileobj is listener:
                accept(listener)
            else:
                serve(key.data, events)
except KeyboardInterrupt:
    pass
finally:
    selector.close()
    listener.close()
