"""A part of a file to send (``conn.sendfile``), read a chunk at a time.

Why apart from :mod:`.files`: the session's state, the transports and the
sending rules all name it, and it needs none of them.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

__all__ = ["FileSource"]


class FileSource:
    """``count`` bytes of a file from ``offset``: read in chunks (``os.pread`` where it has a
    descriptor, so its position is not moved); closed when done if it was opened here."""

    __slots__ = ("_fd", "_file", "_owned", "left", "offset")

    def __init__(self, file: Any, offset: int, count: int | None) -> None:
        if offset < 0 or (count is not None and count < 0):
            raise ValueError("sendfile: offset and count must not be negative")
        owned = isinstance(file, (str, os.PathLike))
        self._file: BinaryIO = open(file, "rb") if owned else file  # noqa: SIM115 - closed in close()
        self._owned = owned
        try:
            self._fd: int | None = self._file.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None  # (a file-like in memory: read from where it is)
        if self._fd is not None and count is None:
            count = max(0, os.fstat(self._fd).st_size - offset)
        elif self._fd is None and offset:
            self._file.seek(offset)
        self.offset = offset
        self.left = count  # None: to the end of a file-like without a descriptor

    @property
    def fd(self) -> int | None:
        return self._fd

    def read(self, size: int) -> bytes:
        """The next chunk, at most ``size`` bytes; b"" at the end."""
        if self.left is not None:
            size = min(size, self.left)
            if not size:
                return b""
        data = os.pread(self._fd, size, self.offset) if self._fd is not None else self._file.read(size)
        self.advance(len(data))
        return data

    def advance(self, count: int) -> None:
        self.offset += count
        if self.left is not None:
            self.left -= count

    def close(self) -> None:
        if self._owned:
            self._file.close()
