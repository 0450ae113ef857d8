"""Files sent on a connection (``conn.sendfile``), after what was sent before them.

Why in the session, as a copy loop fed by the output's drain: a file is output
like any other, so it must wait its turn behind earlier replies, pass through
the byte layers (TLS), and respect backpressure. Here it is read a
``write_buffer_high`` at a time into the output whenever that has drained to
``write_buffer_low`` (``sent``), so a connection holds at most that much of a
file in memory whatever the file's size, on every engine. Where the
connection's own thread owns a plain socket (a ``@blocking`` ``fn(conn)`` on
threads or iterative) the transport hands the file to the kernel's
``sendfile`` instead: no copy through Python at all.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from ..errors import ClosedError
from .file_source import FileSource
from .phases import CLOSED, CLOSING
from .state import SessionState

__all__ = ["FileOutput"]

_get_ident = threading.get_ident


class FileOutput(SessionState):
    """``conn.sendfile``, and feeding the output from the files waiting."""

    __slots__ = ()

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> None:
        if self._closed:
            raise ClosedError(f"{self.peer_url}: sendfile on a closed connection")
        if _get_ident() != self.owner:
            raise RuntimeError(
                "sendfile() is called on the connection's own thread (every engine's event "
                "handlers, an async def, a @blocking fn(conn) on threads or iterative); a "
                "handler on a pool thread sends the file's bytes with conn.send"
            )
        source = FileSource(file, offset, count)
        if self._inbox is not None and self.layers is None and source.fd is not None:
            try:  # a blocking handler owns its thread: the kernel sends it, after the output
                self.transport.send_file(source)
            finally:
                source.close()
            return
        if self._files is None:
            self._files = deque()
        self._files.append(source)  # (and what is sent next, behind it: Session._write)
        self._feed_files()
        if not self._in_event:
            self.transport.output_added()

    def _feed_files(self) -> None:
        """Read from the files waiting (and write what was sent behind them) while the output
        is at or below write_buffer_low."""
        files = self._files
        assert files is not None
        limits = self._limits
        layers = self.layers
        transport = self.transport
        closed = CLOSED  # (a closing connection still sends what it was given: close() flushes)
        while (
            files
            and len(self.out) + transport.unsent() <= limits.write_buffer_low
            and self.phase is not closed
        ):
            source = files[0]
            chunk = source if isinstance(source, bytes) else source.read(limits.write_buffer_high)
            if chunk and layers is not None:
                layers.send(chunk)
            elif chunk:
                self.out += chunk
            if not chunk or chunk is source:
                if not isinstance(source, bytes):
                    source.close()
                files.popleft()
        if not files or self.phase is closed:
            self._drop_files()

    def _drop_files(self) -> None:
        """The files are sent, or the connection ended: what is left of them is not sent. A
        connection that was closed meanwhile sends its layers' goodbye now (TLS close_notify)."""
        files, self._files = self._files, None
        for source in files or ():
            if not isinstance(source, bytes):
                source.close()
        if self.phase is CLOSING and self.layers is not None:
            self.layers.close(self._host.stopping)
