"""Sans-IO codecs: bytes in, messages out. Nothing here imports socket,
selectors, ssl or threading (a test checks it)."""

from .base import Codec, Decoder
from .json import Json
from .length import LengthPrefixed
from .lines import Lines
from .msgpack import Msgpack
from .raw import Raw

__all__ = ["Codec", "Decoder", "Json", "LengthPrefixed", "Lines", "Msgpack", "Raw"]
