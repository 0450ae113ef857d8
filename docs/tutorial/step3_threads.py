"""Step 3: a thread per connection. Clients at once, each on its own thread.

Run: python step3_threads.py [PORT]
"""

import socket
import sys
import threading

port = int(sys.argv[1]) if len(sys.argv) > 1 else 12345


def serve(conn: socket.socket, address: tuple[str, int]) -> None:
    with conn:
        conn.settimeout(30)
        try:
            while data := conn.recv(4096):
                conn.sendall(data)
        except (ConnectionError, TimeoutError) as exc:
            print(f"{address}: {exc}", flush=True)


listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen()
print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)

try:
    while True:
        conn, address = listener.accept()
        # daemon: Ctrl-C does not wait for the clients (it cuts them instead). Nothing
        # bounds the threads either: 10,000 clients are 10,000 threads.
        threading.Thread(target=serve, args=(conn, address), daemon=True).start()
except KeyboardInterrupt:
    pass
finally:
    listener.close()
