"""What a session asks of the engine's side of its connection: the transport.

Why an object the engine gives, not methods the engine overrides: engines used
to subclass the session and re-edit about ten of its methods each, so what
``received`` did on the pool engine was spread over four files. Now an engine
makes one :class:`Transport` per connection (its socket, its loop, its
threads) and hands it to the :class:`~socketkit.session.core.Session` it
creates; the session calls the transport for I/O, and the engine feeds the
session events (``received``, ``sent``, ``quiet``, ``finish``). The session's
methods are the same object on every engine: a test over the class tree keeps
it so.

Each default here is what an engine needs whose handler calls all run on the
connection's own thread and which takes no call from other threads; an engine
overrides what it does differently, in its own transport class.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar

from .inbox import Inbox

if TYPE_CHECKING:
    from .file_source import FileSource

__all__ = ["Transport"]


class Transport:
    """The engine's side of one connection, as its session sees it."""

    __slots__ = ()

    #: Whether messages go to :meth:`run_elsewhere` (a pool thread, an awaited task) rather
    #: than to the handler within the read's event. A connection then has one message in
    #: hand at a time, so its replies leave in request order; one waiting behind it stops
    #: reading (a read's worth at most); none starts while unsent output is above
    #: write_buffer_high; bad input and the peer's end of input wait for the replies before
    #: them; and on_close waits for a handler call in hand.
    defers: ClassVar[bool] = False

    #: Whether the engine holds this connection's reading off for a reason of its own (the
    #: pool is behind): the session does not resume reading while it is set.
    held: bool = False

    # -- I/O -------------------------------------------------------------------------------

    def send_file(self, source: FileSource) -> None:
        """Send the file's bytes now, by the kernel, after the session's output (a blocking
        handler's own thread on a plain socket: threads, iterative). Engines that cannot
        have their sessions copy files into the output instead."""
        raise NotImplementedError

    def layer_output(self) -> tuple[Callable[[bytes], object] | None, AbstractContextManager[object] | None]:
        """Where the connection's byte layers (TLS) write, and what keeps them to one thread
        (:class:`~socketkit.layers.stack.LayerStack`): by default the session's output, and
        nothing (every send is made on the connection's own thread)."""
        return None, None

    def local_address(self) -> Any:
        """Our address for this connection, when it was not known at accept time."""
        return None

    def unsent(self) -> int:
        """Bytes the transport holds beyond the session's output (an outbox other threads fill)."""
        return 0

    def output_added(self) -> None:
        """Output was added outside an event (a send from another connection's handler, a
        blocking handler's send, a close): the engine writes it soon."""

    def send_from_elsewhere(self, data: bytes) -> None:
        """A send (``data`` encoded) from a thread other than the connection's own."""
        raise RuntimeError("this engine takes sends only from the connection's own thread")

    def close_from_elsewhere(self) -> None:
        """A close from a thread other than the connection's own."""
        raise RuntimeError("this engine takes close() only from the connection's own thread")

    def release(self) -> None:
        """Release the socket: the close sequence calls it once."""

    def deadline_moved(self) -> None:
        """The connection's own limits changed (``conn.set_limits``, from any thread): re-arm its
        timer if its deadline is earlier now. (An engine that asks the session for its deadline
        before every wait needs nothing here.)"""

    # -- a @blocking fn(conn) handler ---------------------------------------------------------

    def new_inbox(self) -> Inbox:
        """Where the messages a blocking handler has not taken wait, and how it waits for more."""
        return Inbox()

    def wait_for_input(self) -> None:
        """A blocking handler's recv() on the connection's own thread found nothing: read once,
        within the deadlines, and feed the session."""
        raise RuntimeError("this engine does not run blocking handlers")

    # -- messages handled elsewhere (asked only of a transport that defers) ---------------

    def run_elsewhere(self, message: Any) -> None:
        """Start the handler on ``message``; once it returns, on the connection's own thread and
        after every send it made, the engine calls :meth:`Session.handled`."""
        raise NotImplementedError(f"{type(self).__name__} defers messages but cannot run them")

    def waiting_changed(self, count: int) -> None:
        """``count`` more messages (fewer, if negative) wait for their handler call."""

    def connect_elsewhere(self) -> bool:
        """Run on_connect elsewhere (an ``async def`` one, awaited); False: run it in the event.
        A call run elsewhere ends with :meth:`Session.handled`, as a message's does."""
        return False

    def tell_closed_elsewhere(self, error: BaseException | None) -> bool:
        """Run on_close elsewhere (an ``async def`` one, as a task); False: call it now."""
        return False

    def cancel_running(self) -> bool:
        """The connection ended while a handler call runs elsewhere: cancel it if the engine can
        (an awaited task); True if it did, and on_close is told now."""
        return False
