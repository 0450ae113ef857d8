"""The three handler styles, and the adapter that turns each into one shape.

Styles (DESIGN §3):

1. a request/reply function ``fn(message, conn) -> reply | None`` (every engine);
2. a :class:`Protocol` with ``on_connect``/``on_message``/``on_close`` (every
   engine). A Protocol *class* gets a fresh instance per connection; an
   *instance* is shared by all connections (handy for a chat room's state);
3. a :func:`blocking` function ``fn(conn)`` that iterates ``conn`` and calls
   ``conn.send`` (thread engines only: it blocks a thread per connection);
   ``@blocking`` on a request/reply function ``fn(message, conn)`` runs it on
   a thread too (engine="pool" or "threads": a call to a database).

One rule for concurrency, the same on every engine (DESIGN §4): event-style
handlers (request/reply functions, Protocol callbacks) are never called
concurrently with one another within a server, so a shared Protocol instance
(a chat room) needs no lock; ``@blocking`` handlers (each call on a thread of
its own) and ``async def`` handlers (tasks) run concurrently: they say so.
:attr:`Handler.concurrent` says which; an engine that runs event handlers on
several threads serializes them (``engines/threaded/serial``).

On engine="asyncio" (and "uvloop") the reply function, and a Protocol's
``on_connect``, ``on_message`` and ``on_close``, may be ``async def``: they are
awaited (:attr:`Handler.awaited` says which); ``on_drain`` and ``on_input_end`` stay
plain defs.

Why an adapter: engines should not branch on handler style in their hot loop.
:func:`adapt` validates the handler once, at ``Server(...)``, with a message
that says how to fix it, and returns a :class:`Handler` whose per-connection
:class:`Dispatch` the engines call the same way for every style.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from .connection import Connection

__all__ = ["BlockingHandler", "Dispatch", "Handler", "Protocol", "adapt", "blocking"]

ReplyFunction = Callable[[Any, Connection], Any]


class Protocol:
    """Event callbacks for one connection. Override what you need.

    The two attributes below say what the handler needs, and every server keeps
    them (a reply function may carry them too, set on the function).
    """

    #: False for a handler that needs connections: a server refuses udp:// and unixgram://
    #: endpoints for it, saying so.
    serves_datagrams = True
    #: True for a shared instance whose connections meet in this process's memory (a chat
    #: room): a server with several worker processes is refused, since each would hold a
    #: room of its own.
    one_process = False
    #: With ``one_process``: what else lets it run in several worker processes, said when a
    #: server refuses it (the broker: a backend that joins them).
    one_process_fix = ""
    #: True for a handler that uses the serving asyncio loop itself (``add_reader``,
    #: ``call_later`` from a plain def): served on engine asyncio or uvloop (``auto`` picks
    #: one, as for an ``async def``), refused on the others.
    needs_event_loop = False

    def on_connect(self, conn: Connection) -> None:
        """Called once the connection is accepted, before any message."""

    def on_message(self, conn: Connection, message: Any) -> None:
        """Called for every decoded message, in order."""

    def on_input_end(self, conn: Connection) -> bool:
        """Called once no more input will be read, after every message before it: the peer
        ended its sending side (a half-close: ``shutdown(SHUT_WR)``, ``echo hi | nc``, TLS
        close_notify), or the server is stopping and the connection is between messages.
        Return True to keep the connection open for what the handler still sends (it calls
        ``conn.close()`` when done; ``idle_timeout``, and when stopping the grace period,
        still apply); the default closes it, as asyncio's ``eof_received`` returning False
        does. A plain def; loop engines only (not threads or iterative: their thread would
        have nothing left to wait on).
        """
        return False

    def on_close(self, conn: Connection, error: BaseException | None) -> None:
        """Called once when the connection ends; ``error`` is None on a clean close."""

    def on_drain(self, conn: Connection) -> None:
        """Called when the connection can take more output: once after ``on_connect``,
        then whenever what was sent has drained below ``write_buffer_low``.

        Override it to stream data under backpressure (send a chunk per call);
        a call that sends nothing ends the calls until something else is sent.
        """


class BlockingHandler:
    """A function marked to run on a thread of its own; see :func:`blocking`."""

    def __init__(self, fn: Callable[..., object]) -> None:
        if not callable(fn):
            raise TypeError(f"@blocking needs a function taking (conn) or (message, conn), not {fn!r}")
        self.fn = fn
        #: whether it is a request/reply function ``fn(message, conn)`` rather than ``fn(conn)``
        self.takes_messages = _required_positional(fn) == 2
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any) -> object:
        return self.fn(*args)


def blocking(fn: Callable[..., object]) -> BlockingHandler:
    """Mark a handler as one that blocks, to be run on a thread of its own.

    ``fn(conn)`` owns the connection until it returns (it reads with ``conn.recv()`` or by
    iterating ``conn``); ``fn(message, conn)`` is a request/reply function whose calls run
    on threads, concurrently with one another (engine="pool" or "threads").
    """
    return BlockingHandler(fn)


def _required_positional(fn: Callable[..., object]) -> int | None:
    """How many positional arguments ``fn`` requires (None when it cannot be told)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in positional and p.default is inspect.Parameter.empty)


class Dispatch:
    """What an engine calls for one connection, whatever the handler style."""

    __slots__ = ()

    #: whether the handler produces output on its own (Protocol.on_drain overridden).
    wants_drain = False

    #: Whether on_connect and on_close do anything (a Protocol that overrides them): the
    #: session skips the calls otherwise, two per connection.
    hears_connect = False
    hears_close = False
    #: Whether on_input_end is the handler's own (else the connection closes at the peer's end).
    hears_input_end = False

    #: A request/reply function ``fn(message, conn) -> reply`` that the session may call
    #: itself and send what it returns (one call a message, not three); None: the session
    #: calls :meth:`message`.
    reply: ReplyFunction | None = None

    def connected(self) -> None:
        """The connection was accepted."""

    def message(self, message: Any) -> None:
        """One decoded message arrived."""

    def awaited(self, message: Any) -> Awaitable[None]:
        """One decoded message, for an ``async def`` handler: what the engine awaits."""
        raise TypeError("this handler is not an async def")

    def awaited_connect(self) -> Awaitable[None]:
        """The connection was accepted, for an ``async def on_connect``: what the engine awaits."""
        raise TypeError("this handler has no async on_connect")

    def awaited_close(self, error: BaseException | None) -> Awaitable[None]:
        """The connection ended, for an ``async def on_close``: what the engine awaits."""
        raise TypeError("this handler has no async on_close")

    def closed(self, error: BaseException | None) -> None:
        """The connection ended (``error`` None when clean)."""

    def drained(self) -> None:
        """The connection can take more output."""

    def input_ended(self) -> bool:
        """The peer half-closed: whether the handler keeps the connection open."""
        return False


class _ReplyDispatch(Dispatch):
    __slots__ = ("_conn", "_fn", "reply")

    def __init__(self, fn: ReplyFunction, conn: Connection) -> None:
        self._fn = fn
        self._conn = conn
        self.reply = fn

    def message(self, message: Any) -> None:
        reply = self._fn(message, self._conn)
        if reply is not None:
            self._conn.send(reply)

    async def awaited(self, message: Any) -> None:
        reply = await self._fn(message, self._conn)
        if reply is not None:
            self._conn.send(reply)


class _ProtocolDispatch(Dispatch):
    __slots__ = (
        "_conn",
        "_protocol",
        "hears_close",
        "hears_connect",
        "hears_input_end",
        "message",
        "wants_drain",
    )

    def __init__(self, protocol: Protocol, conn: Connection, handler: Handler) -> None:
        self._protocol = protocol
        self._conn = conn
        self.wants_drain = handler.wants_drain
        self.hears_connect = handler.hears_connect
        self.hears_close = handler.hears_close
        self.hears_input_end = handler.hears_input_end
        # on_message with the connection bound: the per-message call is the handler's own
        self.message = functools.partial(protocol.on_message, conn)  # type: ignore[method-assign]

    def drained(self) -> None:
        self._protocol.on_drain(self._conn)

    def connected(self) -> None:
        self._protocol.on_connect(self._conn)

    def input_ended(self) -> bool:
        return bool(self._protocol.on_input_end(self._conn))

    # (each of these is an async def here: Handler.awaited names it)
    def awaited(self, message: Any) -> Awaitable[None]:
        return self._protocol.on_message(self._conn, message)  # type: ignore[func-returns-value,return-value]

    def awaited_connect(self) -> Awaitable[None]:
        return self._protocol.on_connect(self._conn)  # type: ignore[func-returns-value,return-value]

    def awaited_close(self, error: BaseException | None) -> Awaitable[None]:
        return self._protocol.on_close(self._conn, error)  # type: ignore[func-returns-value,return-value]

    def closed(self, error: BaseException | None) -> None:
        self._protocol.on_close(self._conn, error)


class Handler:
    """A validated handler of any style."""

    def __init__(
        self,
        kind: Literal["reply", "protocol", "blocking"],
        target: Any,
        name: str,
        awaited: frozenset[str] = frozenset(),
        *,
        threaded: bool = False,
    ) -> None:
        self.kind = kind
        self.target = target
        self.name = name
        #: what is an ``async def`` and is awaited: "on_message" (a reply function, or a
        #: Protocol's), "on_connect", "on_close" (engine="asyncio" or "uvloop" only)
        self.awaited = awaited
        self.is_async = bool(awaited)
        #: a @blocking handler: it runs in its own thread and reads with conn.recv()
        self.is_blocking = kind == "blocking"
        #: marked @blocking (either form): it needs an engine with threads for handlers
        self.may_block = self.is_blocking or threaded
        #: whether its calls run concurrently with one another (@blocking, async def); the
        #: calls of every other handler are made one at a time, on every engine
        self.concurrent = self.may_block or self.is_async
        protocol_class: type[Any] = target if isinstance(target, type) else type(target)
        protocol = kind == "protocol"
        # What a Protocol overrides, known once, not per connection:
        #: on_drain: it produces output on its own
        self.wants_drain = protocol and protocol_class.on_drain is not Protocol.on_drain
        #: on_connect and on_close: they are called (else skipped, see Dispatch)
        self.hears_connect = protocol and protocol_class.on_connect is not Protocol.on_connect
        self.hears_close = protocol and protocol_class.on_close is not Protocol.on_close
        #: on_input_end: it may keep a half-closed connection open
        self.hears_input_end = protocol and protocol_class.on_input_end is not Protocol.on_input_end

    def dispatch(self, conn: Connection) -> Dispatch:
        """The per-connection dispatcher (reply and protocol styles)."""
        if self.kind == "reply":
            return _ReplyDispatch(self.target, conn)
        if self.kind == "protocol":
            protocol = self.target() if isinstance(self.target, type) else self.target
            return _ProtocolDispatch(protocol, conn, self)
        raise TypeError("a blocking handler has no per-message dispatch; call run_blocking(conn)")

    def datagram_handler(self) -> Callable[[Any, Connection], None]:
        """A callable ``(message, conn)`` for datagrams; one Protocol instance per socket."""
        if self.kind == "reply":
            fn: ReplyFunction = self.target

            def reply(message: Any, conn: Connection) -> None:
                answer = fn(message, conn)
                if answer is not None:
                    conn.send(answer)

            return reply
        if self.kind == "protocol":
            protocol: Protocol = self.target() if isinstance(self.target, type) else self.target
            return lambda message, conn: protocol.on_message(conn, message)
        raise TypeError("blocking handlers cannot serve datagrams")

    def run_blocking(self, conn: Connection) -> None:
        self.target(conn)

    @property
    def described(self) -> str:
        """The handler's name and what a user must know of how it is called (the serving line):
        a Protocol class is instantiated per connection, an instance is shared by all."""
        if self.kind == "protocol":
            if isinstance(self.target, type):
                return f"{self.name}, a Protocol class: an instance per connection"
            return f"{self.name}, one Protocol instance shared by every connection"
        if self.is_blocking:
            return f"{self.name}, @blocking: a thread per connection"
        if self.may_block:
            return f"{self.name}, @blocking: its calls on threads"
        return self.name

    def __repr__(self) -> str:
        return f"<Handler {self.kind} {self.name}>"


def adapt(handler: object) -> Handler:
    """Validate ``handler`` and wrap it as a :class:`Handler`.

    Raises:
        TypeError: ``handler`` is none of the three styles; the message says how to fix it.
    """
    if isinstance(handler, Handler):
        return handler
    name = getattr(handler, "__qualname__", None) or type(handler).__qualname__
    awaited = _async_parts(handler, name)
    if isinstance(handler, BlockingHandler):
        if handler.takes_messages:
            return Handler("reply", handler.fn, name, threaded=True)
        return Handler("blocking", handler.fn, name)
    if isinstance(handler, type):
        if issubclass(handler, Protocol):
            return Handler("protocol", handler, name, awaited)
        raise TypeError(f"handler class {name} must subclass socketkit.Protocol")
    if isinstance(handler, Protocol):
        return Handler("protocol", handler, name, awaited)
    if callable(handler):
        _check_reply_signature(handler, name)
        return Handler("reply", handler, name, awaited)
    raise TypeError(
        f"handler must be a function (message, conn) -> reply, a socketkit.Protocol "
        f"subclass or instance, or a @socketkit.blocking function (conn); got {handler!r}"
    )


_PROTOCOL_EVENTS = ("on_connect", "on_message", "on_drain", "on_input_end", "on_close")
#: the Protocol events that may be an ``async def`` (on_drain produces between writes, and
#: on_input_end answers at once: plain)
_AWAITABLE_EVENTS = frozenset({"on_connect", "on_message", "on_close"})


def _async_parts(handler: object, name: str) -> frozenset[str]:
    """What of the handler is awaited: "on_message" for an ``async def`` reply function,
    and a Protocol's events that are ``async def``. Any other ``async def`` is refused now,
    not with "coroutine was never awaited" on every request."""
    fn = handler.fn if isinstance(handler, BlockingHandler) else handler
    candidates = [("on_message", name, fn)]
    protocol = isinstance(handler, Protocol) or (isinstance(handler, type) and issubclass(handler, Protocol))
    if protocol:
        candidates = [(event, f"{name}.{event}", getattr(handler, event, None)) for event in _PROTOCOL_EVENTS]
    awaited = set()
    for event, what, candidate in candidates:
        if inspect.isasyncgenfunction(candidate) or (
            inspect.iscoroutinefunction(candidate)
            and (isinstance(handler, BlockingHandler) or event not in _AWAITABLE_EVENTS)
        ):
            raise TypeError(
                f"{what} is an async def: a reply function and a Protocol's on_connect, "
                "on_message and on_close may be (awaited on engine='asyncio' or 'uvloop'); "
                "write it as a plain def"
            )
        if inspect.iscoroutinefunction(candidate):
            awaited.add(event)
    return frozenset(awaited)


def _check_reply_signature(fn: Callable[..., Any], name: str) -> None:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # builtins and C callables: trust them
    try:
        signature.bind(None, None)
    except TypeError:
        try:
            signature.bind(None)
        except TypeError:
            pass
        else:
            raise TypeError(
                f"handler {name} takes one argument: if it is (conn) and loops over "
                "messages, decorate it with @socketkit.blocking; a request/reply "
                "function takes (message, conn)"
            ) from None
        raise TypeError(f"handler {name} must take (message, conn)") from None
