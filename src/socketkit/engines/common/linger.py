"""Lingering close: the server's last bytes reach a peer that is still sending.

Why: a socket closed while input it has not read is waiting (or arriving) is
reset by the kernel, and a reset throws away what the kernel had not sent yet:
a pipelining client that keeps sending after the server's ``Connection: close``
or error reply, or after a stop began, loses replies already made. So a
connection the server closes, whose peer has not ended its input, first shuts
down its sending side (its FIN follows what was sent), then keeps reading and
discarding until the peer ends too, for at most :data:`LINGER_TIME` seconds and
:data:`LINGER_BYTES` bytes (bounded, as Apache's and nginx's lingering close),
and only then closes.

A connection lingers only where the reset would come: input is waiting when it
closes (a peer that is still sending), or an answer is due (our WebSocket close
frame asked for the peer's, which RFC 6455 has the server wait for). A peer that sent nothing more is not
waited for: an idle connection closed at a stop, or one whose client keeps it
open without reading, is closed at once, so stopping stays fast and no thread
is held. (Lingering whenever output was not acknowledged yet held every such
connection for the whole LINGER_TIME.)

Each engine family waits in its own way (the reactor watches the socket with
its poller, a thread reads with a kernel timeout, the asyncio engine keeps its
transport reading); this module holds the rule they share.
"""

from __future__ import annotations

import socket

__all__ = ["LINGER_BYTES", "LINGER_TIME", "begin"]

#: Seconds a closing connection keeps reading and discarding, at most.
LINGER_TIME = 2.0
#: Bytes a closing connection reads and discards, at most.
LINGER_BYTES = 4 << 20

_PEEK = socket.MSG_PEEK | socket.MSG_DONTWAIT


def begin(sock: socket.socket, answer_due: bool = False) -> bool:
    """True if ``sock`` should linger before it is closed (input waits: closing now would
    reset; or ``answer_due``: our goodbye asked the peer for an answer, WebSocket's close
    frame), its sending side shut down; False to close now. (The look comes first: most
    connections have nothing waiting, and close at the cost of that one system call.)"""
    try:
        # b"": the peer's end of stream is here already; nothing: BlockingIOError
        if not sock.recv(1, _PEEK):
            return False
    except BlockingIOError:
        if not answer_due:
            return False
    except OSError:  # not connected any more
        return False
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        return False
    return True
