"""socketkit: TCP, UDP and Unix-socket servers and clients.

Write a handler once, pick a concurrency engine by name, and get framing,
limits, timeouts, graceful shutdown and stats. This module only re-exports the
public API.
"""

from .client import Client, DatagramClient, connect
from .codecs import (
    Codec,
    Decoder,
    HttpClient,
    HttpRequest,
    HttpResponse,
    Json,
    LengthPrefixed,
    Lines,
    Msgpack,
    Raw,
    Request,
    WebSocket,
)
from .connection import Connection
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
from .handlers import Protocol, blocking
from .limits import Limits
from .server import Server
from .stats import Stats

__version__ = "0.2.0"

__all__ = [
    "BindError",
    "BrokenError",
    "Client",
    "ClosedError",
    "Codec",
    "ConnectError",
    "ConnectTimeout",
    "Connection",
    "DatagramClient",
    "Decoder",
    "HttpClient",
    "HttpRequest",
    "HttpResponse",
    "Json",
    "LengthPrefixed",
    "LimitExceeded",
    "Limits",
    "Lines",
    "LocalProtocolError",
    "Msgpack",
    "Protocol",
    "ProtocolError",
    "Raw",
    "RemoteProtocolError",
    "Request",
    "Server",
    "SocketkitError",
    "Stats",
    "Timeout",
    "WebSocket",
    "__version__",
    "blocking",
    "connect",
]
