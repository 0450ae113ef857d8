"""TCP echo client: sends each argument as a line and prints the reply."""

import sys

import socketkit as sk

url = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:8888"
words = sys.argv[2:] or ["hello", "world"]

with sk.connect(url, codec=sk.Lines(), timeout=5, retries=3) as client:
    for word in words:
        reply = client.request(word.encode())
        print(reply.decode())
