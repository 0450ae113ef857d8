"""The client every step of the tutorial talks to: three lines out, each reply printed.

Run: python client.py [PORT]   (12345 unless told)
"""

import socket
import sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else 12345

with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
    replies = sock.makefile("rb")  # a file over the socket: readline() finds where a line ends
    for line in [b"hello", b"how are you?", b"bye"]:
        sock.sendall(line + b"\n")  # sendall: one send() may take only part of the bytes
        reply = replies.readline()  # one recv() may return half a line, or two lines
        print(reply.decode().rstrip("\n"))
