"""Step 2: an iterative server. Clients one after another, for ever; Ctrl-C stops it.

Run: python step2_iterative.py [PORT]
"""

import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 12345

listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
# Without SO_REUSEADDR a restart fails with "Address already in use" for a minute or so:
# the last run's connections linger in TIME_WAIT on the port.
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen()
print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)

try:
    while True:
        # A signal no longer breaks accept() or recv() with EINTR: since Python 3.5 (PEP 475)
        # they are retried, unless the signal's handler raises (Ctrl-C: KeyboardInterrupt).
        conn, address = listener.accept()
        conn.settimeout(30)  # a client that says nothing must not hold the server for ever
        with conn:
            try:
                while data := conn.recv(4096):
                    conn.sendall(data)
            except (ConnectionError, TimeoutError) as exc:  # one client's trouble is its own
                print(f"{address}: {exc}", flush=True)
except KeyboardInterrupt:
    pass  # Ctrl-C: the connection in hand is dropped mid-conversation
finally:
    listener.close()
