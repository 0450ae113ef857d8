"""Ask the shout server three times.

Run: python shout_client.py [PORT]
"""

import sys

import socketkit as sk

port = int(sys.argv[1]) if len(sys.argv) > 1 else 12345

with sk.connect(f"tcp://127.0.0.1:{port}", codec=sk.Lines(), timeout=5) as client:
    for word in [b"hello", b"socket", b"world"]:
        print(client.request(word).decode())  # request(): send one message, wait for its reply
