"""The exceptions socketkit raises, in one place.

Why a hierarchy of our own: callers should be able to tell "the peer sent
garbage" (RemoteProtocolError) from "we were asked to send something the
framing cannot carry" (LocalProtocolError) from "the network broke"
(BrokenError) without parsing errno values. ``OSError`` is translated into
these exactly once, at the socket boundary (:func:`translate_oserror`), and the
original is kept as ``__cause__`` (``raise ... from exc``), as trio does.

The timeout classes also derive from the builtin :class:`TimeoutError`, so
``except TimeoutError`` written against the plain socket module keeps working.
"""

from __future__ import annotations

import errno
from typing import Any

__all__ = [
    "BindError",
    "BrokenError",
    "ClosedError",
    "ConnectError",
    "ConnectTimeout",
    "IdleTimeout",
    "LimitExceeded",
    "LocalProtocolError",
    "ProtocolError",
    "ReadTimeout",
    "RemoteProtocolError",
    "SocketkitError",
    "Timeout",
    "WriteTimeout",
    "translate_oserror",
]


class SocketkitError(Exception):
    """Base class of every error socketkit raises on purpose."""


class ProtocolError(SocketkitError):
    """A message could not be framed or parsed.

    ``messages`` holds what a decoder completed in the same ``feed`` before the
    bad input: engines answer those first, then report the error (a pipelined
    good request is not lost because a later one is bad).
    """

    messages: list[Any]

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.messages = []


class LocalProtocolError(ProtocolError):
    """We were asked to encode something the codec cannot represent."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that do not form a valid message."""


class LimitExceeded(RemoteProtocolError):
    """The peer exceeded a configured limit (message size, buffer size, ...)."""


class ClosedError(SocketkitError):
    """The connection is closed: by us, or cleanly by the peer."""


class BrokenError(SocketkitError):
    """The connection broke: reset by the peer, broken pipe, network failure."""


class ConnectError(SocketkitError):
    """A connection could not be established."""


class BindError(SocketkitError):
    """A listening socket could not be created (address in use, permission, ...)."""


class Timeout(SocketkitError, TimeoutError):
    """An operation did not finish within its deadline."""


class ConnectTimeout(ConnectError, Timeout):
    """Connecting did not finish within its deadline."""


class IdleTimeout(Timeout):
    """A connection sent nothing for ``Limits.idle_timeout`` seconds between messages."""


class ReadTimeout(Timeout):
    """A peer did not finish a started message within ``Limits.read_timeout``."""


class WriteTimeout(Timeout):
    """A peer did not read its replies within ``Limits.idle_timeout``."""


_BROKEN_ERRNOS = frozenset(
    {
        errno.ECONNRESET,
        errno.EPIPE,
        errno.ECONNABORTED,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ENETDOWN,
        errno.ENOTCONN,
        errno.ESHUTDOWN,
    }
)


def translate_oserror(exc: OSError, address: str, action: str = "") -> SocketkitError:
    """Map an ``OSError`` from a socket call to a socketkit error naming ``address``.

    ``action`` is "connect" for connection attempts (refusals become
    :class:`ConnectError`), anything else for I/O on an established socket.
    The caller raises the result ``from exc``.
    """
    reason = exc.strerror or str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        if action == "connect":
            return ConnectTimeout(f"timed out connecting to {address}")
        return Timeout(f"timed out waiting for {address}")
    if action == "connect":
        if isinstance(exc, ConnectionRefusedError):
            return ConnectError(f"connection refused: {address} (is a server listening?)")
        if isinstance(exc, FileNotFoundError):
            return ConnectError(f"no such socket: {address} (is a server listening?)")
        return ConnectError(f"cannot connect to {address}: {reason}")
    if exc.errno in _BROKEN_ERRNOS or isinstance(exc, ConnectionError):
        return BrokenError(f"connection to {address} broke: {reason}")
    if exc.errno == errno.EBADF:
        return ClosedError(f"connection to {address} is closed")
    return BrokenError(f"I/O error on {address}: {reason}")
