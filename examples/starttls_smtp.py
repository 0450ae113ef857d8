"""An SMTP-style greeting that upgrades to TLS on STARTTLS (RFC 3207), as mail servers do.

Run it with a certificate (and key, in the same PEM file or apart):

    python examples/starttls_smtp.py tcp://127.0.0.1:8825 server.pem [server.key]

and talk to it with OpenSSL's client, which speaks the SMTP part itself:

    openssl s_client -starttls smtp -connect 127.0.0.1:8825 -crlf -quiet

The server greets in the clear, lists STARTTLS in its EHLO reply, answers STARTTLS with
"220 Ready to start TLS" and then ``conn.start_tls()``: the client's next bytes are the
handshake. Every later reply says what carries it; QUIT ends the session. (Only the
shape of SMTP: it accepts no mail.)
"""

import logging
import sys

import socketkit as sk
from socketkit.layers.tls import TlsLayer
from socketkit.tls import server_context

logging.basicConfig(level=logging.INFO, format="%(message)s")


class Smtpish(sk.Protocol):
    def __init__(self, tls: object) -> None:
        self.tls = tls

    def on_connect(self, conn: sk.Connection) -> None:
        conn.send(b"220 socketkit ESMTP example")

    def on_message(self, conn: sk.Connection, line: bytes) -> None:
        verb = line.split(b" ", 1)[0].upper()
        secured = conn.layer(TlsLayer)  # type: ignore[attr-defined]
        if verb in (b"EHLO", b"HELO"):
            if secured is None:
                conn.send(b"250-socketkit greets you")
                conn.send(b"250 STARTTLS")
            else:
                conn.send(b"250 socketkit greets you over " + secured.version.encode())
        elif verb == b"STARTTLS" and secured is None:
            conn.send(b"220 2.0.0 Ready to start TLS")
            conn.start_tls(self.tls)  # the go-ahead above goes in the clear; TLS from here
        elif verb == b"QUIT":
            conn.send(b"221 2.0.0 Bye")
            conn.close()
        else:
            carried = "plaintext" if secured is None else secured.version
            conn.send(f"250 2.0.0 OK ({carried})".encode())


url = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:8825"
if len(sys.argv) < 3:
    sys.exit("usage: starttls_smtp.py URL CERT.pem [KEY.pem]")
context = server_context(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
sk.Server(url, Smtpish(context), codec=sk.Lines(b"\r\n")).serve_forever()
