"""The standard library's ThreadingTCPServer: a thread per connection."""

from __future__ import annotations

import signal
import socketserver
import threading

from _common import answer, args

service, port = args()


class Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock = self.request
        buffer = bytearray()
        while data := sock.recv(65536):
            if service == "echo":
                sock.sendall(data)
                continue
            buffer += data
            reply, close = answer(buffer)
            sock.sendall(reply)
            if close:
                return


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 4096


server = Server(("127.0.0.1", port), Handler)
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
signal.signal(signal.SIGINT, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()
