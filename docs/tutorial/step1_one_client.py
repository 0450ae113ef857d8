"""Step 1: a socket by hand. One client, then the server exits.

Run: python step1_one_client.py [PORT]   (12345 unless told; 0: any free port)
"""

import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 12345

listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # TCP over IPv4
listener.bind(("127.0.0.1", port))  # this machine only; "0.0.0.0" would be every interface
listener.listen()  # from now on the kernel accepts connections into a backlog
print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)

conn, address = listener.accept()  # waits for the first client in the backlog
print("connected:", address, flush=True)
while True:
    data = conn.recv(4096)  # what has arrived: part of a line, a line, or several
    if not data:  # b"": the client closed its end
        break
    conn.sendall(data)  # an echo needs no framing: the bytes go back as they came
conn.close()
listener.close()
