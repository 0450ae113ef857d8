"""socketkit: TCP, UDP and Unix-socket servers and clients.

Write a handler once, pick a concurrency engine by name, and get framing,
limits, timeouts, graceful shutdown and stats. This module only re-exports the
public API.
"""

from .codecs import Codec, Decoder, Json, LengthPrefixed, Lines, Msgpack, Raw
from .errors import (
    BindError,
    BrokenError,
    ClosedError,
    ConnectError,
    ConnectTimeout,
    LimitExceeded,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    SocketkitError,
    Timeout,
)

__version__ = "0.1.0"

__all__ = [
    "BindError",
    "BrokenError",
    "ClosedError",
    "Codec",
    "ConnectError",
    "ConnectTimeout",
    "Decoder",
    "Json",
    "LengthPrefixed",
    "LimitExceeded",
    "Lines",
    "LocalProtocolError",
    "Msgpack",
    "ProtocolError",
    "Raw",
    "RemoteProtocolError",
    "SocketkitError",
    "Timeout",
    "__version__",
]
