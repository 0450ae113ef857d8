"""A netcat session's log: what went each way, raw (ncat's ``-o``) or as hex (``-x``).

Why in the library, not the CLI: the relays of :mod:`socketkit.relay` are
library functions, and what they moved is theirs to tell. Raw keeps the bytes
as they passed, both directions in order (as ncat's ``--output``); hex writes a
line per chunk saying which way it went and how long it was (socat's ``-v``
habit, since ncat's own ``--hex-dump`` leaves the direction out), then the
bytes as ncat's lines do: offset, sixteen bytes in hex, and those of them that
print.
"""

from __future__ import annotations

import time
from typing import BinaryIO

__all__ = ["SessionLog", "hexdump"]

_PRINTABLE = bytes(range(0x20, 0x7F))


def hexdump(data: bytes, offset: int = 0) -> str:
    """``data`` as hex lines: ``[0000]   48 65 6C 6C 6F 0A   ...   Hello.`` (16 bytes a line)."""
    lines = []
    for start in range(0, len(data), 16):
        chunk = data[start : start + 16]
        cells = [f"{byte:02X}" for byte in chunk]
        hex_part = " ".join(cells[:8]) + ("   " + " ".join(cells[8:]) if len(cells) > 8 else "")
        text = "".join(chr(byte) if byte in _PRINTABLE else "." for byte in chunk)
        lines.append(f"[{offset + start:04X}]   {hex_part:<49}   {text}\n")
    return "".join(lines)


class SessionLog:
    """Where a relay writes what it moved: ``sent`` and ``received`` per chunk.

    A relay of many connections (``socketkit relay``) logs each through :meth:`of`: one
    file, each hex chunk headed by its connection and its own offsets, ``up`` (from the
    client, to the target) and ``down``; raw, their bytes interleave as they pass, as
    ncat's ``-o`` with several clients.
    """

    def __init__(
        self, file: BinaryIO, hex_dump: bool, *, who: str = "", verbs: tuple[str, str] = ("sent", "received")
    ) -> None:
        self._file = file
        self._hex = hex_dump
        self._who = f"{who} " if who else ""
        self._verbs = verbs
        self._offsets = {">": 0, "<": 0}  # bytes so far each way (the hex lines' offsets)

    def of(self, who: str) -> SessionLog:
        """The log of one relayed connection, ``who`` (its client), on the same file."""
        return SessionLog(self._file, self._hex, who=who, verbs=("up", "down"))

    def sent(self, data: bytes) -> None:
        self._write(">", self._verbs[0], data)

    def received(self, data: bytes) -> None:
        self._write("<", self._verbs[1], data)

    def _write(self, arrow: str, verb: str, data: bytes) -> None:
        if not self._hex:
            self._file.write(data)
        else:
            now = time.strftime("%Y-%m-%d %H:%M:%S")
            offset = self._offsets[arrow]
            header = f"{arrow} {now} {self._who}{verb} {len(data)} byte(s), from {offset} to {offset + len(data) - 1}\n"
            self._file.write((header + hexdump(data, offset)).encode())  # (one write: whole in O_APPEND)
            self._offsets[arrow] = offset + len(data)
        self._file.flush()  # (a session may end with a kill: what was logged stays logged)
