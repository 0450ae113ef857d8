"""Step 5: the standard library's framework, socketserver.

Run: python step5_socketserver.py [PORT]
"""

import socketserver
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 12345


class Echo(socketserver.StreamRequestHandler):
    timeout = 30  # seconds a client may stay silent

    def handle(self) -> None:
        for line in self.rfile:  # readline() under the hood: whole lines, however they arrive
            self.wfile.write(line)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True  # SO_REUSEADDR
    daemon_threads = True  # Ctrl-C does not wait for the clients


with Server(("127.0.0.1", port), Echo) as server:
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
