"""The private framing between the WebSocket layer and its codec: a kind byte and a length
before each message. It never reaches the wire.

Why apart: the layer (under the session's codec) and the codec (above it) both read and
write it, and neither may import the other's module at import time (the codecs package
makes the layer, the layer reads the HTTP codec): this module imports nothing of theirs.

Kinds: ``T`` text (UTF-8), ``B`` binary, ``C`` a close to send (code, reason: from the
handler or the codec's error reply), and up only ``E`` a bad frame (its close code and
reason), which the codec raises after the messages before it.
"""

from __future__ import annotations

import struct

__all__ = ["CARRY_HEAD", "carry"]

#: kind (T, B, C, E) and the length of what follows
CARRY_HEAD = struct.Struct("!cQ")


def carry(kind: bytes, payload: bytes) -> bytes:
    """One message in the private framing."""
    return CARRY_HEAD.pack(kind, len(payload)) + payload
