"""Sans-IO codecs: bytes in, messages out. Nothing here imports socket,
selectors, ssl or threading, but for the Lock that guards the structured codecs'
item budget, which connections on many threads share (a test checks it)."""

from .base import Codec, Decoder
from .http import HttpRequest, HttpResponse, Request
from .http_client import HttpClient
from .json import Json
from .length import LengthPrefixed
from .lines import Lines
from .msgpack import Msgpack
from .raw import Raw
from .websocket import WebSocket

__all__ = [
    "CODECS",
    "Codec",
    "Decoder",
    "HttpClient",
    "HttpRequest",
    "HttpResponse",
    "Json",
    "LengthPrefixed",
    "Lines",
    "Msgpack",
    "Raw",
    "Request",
    "WebSocket",
    "codec_by_name",
]

#: codecs by the names the CLI and configuration files use.
CODECS: dict[str, type[Codec]] = {
    "raw": Raw,
    "lines": Lines,
    "length": LengthPrefixed,
    "json": Json,
    "msgpack": Msgpack,
    "http": HttpRequest,
    "ws": WebSocket,
}


def codec_by_name(name: str) -> Codec:
    """A codec with its defaults, by name.

    Raises:
        ValueError: no codec has that name.
        ImportError: its optional dependency is missing (msgpack).
    """
    try:
        cls = CODECS[name]
    except KeyError:
        raise ValueError(f"unknown codec {name!r}: choose one of {', '.join(CODECS)}") from None
    return cls()
