"""The standard library's ``socketserver``, as documented, with its sharp edges filed off.

Why a module of its own rather than socketkit's engines underneath: a
``socketserver`` handler owns its socket (``self.request.recv``, ``rfile``,
``wfile``), and programs subclass every hook (``verify_request``,
``process_request``, ``server_bind``...). Those hooks are the API, so they are
kept, called at the documented points and in the documented order; a program
that swaps ``import socketserver`` for ``from socketkit.compat import
socketserver`` runs unchanged.

Where the standard library can be better without breaking what it documents,
it is (each difference is in the class's docstring and the README):

- ``shutdown()`` returns as soon as the loop has stopped: ``serve_forever``
  waits on a wake-up socket beside the listener, instead of noticing the
  request at its next ``poll_interval`` (the XXX in CPython's own source).
- ``ThreadingMixIn`` is bounded: at ``max_threads`` requests being handled the
  loop stops accepting, so newcomers wait in the listen backlog, and it keeps
  no finished threads (``server_close`` joins only the live ones). At the bound,
  clients that move almost nothing are shed for a newcomer that waits
  (``shed_below_rate``), so a slowloris cannot hold every thread.
- ``ForkingMixIn`` reaps each child the moment it exits (a pidfd per child in
  the loop's selector, where the OS has them), waits only for its own
  children (never ``waitpid(-1)``, which steals a handler's subprocesses), and
  at ``max_children`` stops accepting instead of blocking the loop.
- Handlers on stream sockets get a read timeout (``timeout``, the same default
  as ``Limits().idle_timeout``), so a silent client cannot hold a thread or a
  process forever; ``timeout = None`` on the handler class restores the
  standard library's wait without end. A request that times out is one line
  on stderr, not a traceback.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import selectors
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from ..limits import Limits

__all__ = [
    "BaseRequestHandler",
    "BaseServer",
    "DatagramRequestHandler",
    "StreamRequestHandler",
    "TCPServer",
    "ThreadingMixIn",
    "ThreadingTCPServer",
    "ThreadingUDPServer",
    "UDPServer",
]
if hasattr(os, "fork"):
    __all__ += ["ForkingMixIn", "ForkingTCPServer", "ForkingUDPServer"]
if hasattr(socket, "AF_UNIX"):
    __all__ += [
        "ThreadingUnixDatagramServer",
        "ThreadingUnixStreamServer",
        "UnixDatagramServer",
        "UnixStreamServer",
    ]
    if hasattr(os, "fork"):
        __all__ += ["ForkingUnixDatagramServer", "ForkingUnixStreamServer"]

#: seconds a stream handler waits for its client before the request fails
DEFAULT_HANDLER_TIMEOUT = Limits().idle_timeout
#: requests handled at once by a ThreadingMixIn server, by default
DEFAULT_MAX_THREADS = Limits().max_connections

# poll where there is poll (no descriptor limit, no epoll descriptor of its own)
_Selector = selectors.PollSelector if hasattr(selectors, "PollSelector") else selectors.SelectSelector
_WAKE = object()  # the selector key data of the wake-up socket
_LISTENER = object()  # ... and of the server's own socket

RequestHandlerFactory = Callable[[Any, Any, "BaseServer"], Any]


class BaseServer:
    """The serving loop and its hooks, for any kind of socket (see the module notes).

    ``serve_forever(poll_interval)`` runs ``service_actions()`` at least every
    ``poll_interval`` seconds, as the standard library does, but ``shutdown()``
    does not wait for it: it wakes the loop at once.
    """

    timeout: float | None = None
    socket: socket.socket

    def __init__(self, server_address: Any, RequestHandlerClass: RequestHandlerFactory) -> None:
        """May be extended, do not override."""
        self.server_address = server_address
        self.RequestHandlerClass = RequestHandlerClass
        self.__is_shut_down = threading.Event()
        self.__shutdown_request = False
        self.__wake_lock = threading.Lock()
        self.__wake: socket.socket | None = None  # the write end, while serve_forever runs
        self._selector: selectors.BaseSelector | None = None  # serve_forever's, for mixins

    def server_activate(self) -> None:
        """Called by the constructor to activate the server. May be overridden."""

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Handle requests until shutdown(); ``service_actions()`` runs after each wake-up and
        at least every ``poll_interval`` seconds. Ignores ``self.timeout``."""
        self.__is_shut_down.clear()
        wake_r, wake_w = socket.socketpair()
        try:
            wake_r.setblocking(False)
            wake_w.setblocking(False)
            with self.__wake_lock:
                self.__wake = wake_w
            with _Selector() as selector:
                self._selector = selector
                selector.register(wake_r, selectors.EVENT_READ, _WAKE)
                listening = False
                while not self.__shutdown_request:
                    accepting = self._accepting()
                    if accepting != listening:
                        if accepting:
                            selector.register(self, selectors.EVENT_READ, _LISTENER)
                        else:
                            selector.unregister(self)
                        listening = accepting
                    ready = selector.select(poll_interval)
                    if self.__shutdown_request:
                        break
                    for key, _ in ready:
                        if key.data is _WAKE:
                            _drain(wake_r)
                        elif key.data is _LISTENER:
                            self._handle_request_noblock()
                        else:
                            key.data()  # a mixin's callback (a child exited)
                    self.service_actions()
        finally:
            self._selector = None
            with self.__wake_lock:
                self.__wake = None
            wake_r.close()
            wake_w.close()
            self.__shutdown_request = False
            self.__is_shut_down.set()

    def shutdown(self) -> None:
        """Stop the serve_forever loop and wait until it has stopped.

        It returns as soon as the loop has finished the request it was on. Call it
        while serve_forever() runs in another thread, or it waits forever (as in the
        standard library).
        """
        self.__shutdown_request = True
        self._wake_loop()
        self.__is_shut_down.wait()

    def _wake_loop(self) -> None:
        """Make serve_forever's loop run an iteration now (any thread)."""
        with self.__wake_lock:
            if self.__wake is not None:
                with contextlib.suppress(OSError):  # full: a wake-up is pending already
                    self.__wake.send(b"\0")

    def _accepting(self) -> bool:
        """Whether the loop should take a new request now (mixins bound their workers)."""
        return True

    def service_actions(self) -> None:
        """Called by the serve_forever() loop after each wake-up. May be overridden."""

    def handle_request(self) -> None:
        """Handle one request, waiting at most ``self.timeout`` (and the socket's timeout)
        for it; handle_timeout() if none came."""
        timeout = self.socket.gettimeout()
        if timeout is None:
            timeout = self.timeout
        elif self.timeout is not None:
            timeout = min(timeout, self.timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        with _Selector() as selector:
            selector.register(self, selectors.EVENT_READ)
            while True:
                if selector.select(timeout):
                    self._handle_request_noblock()
                    return
                if deadline is not None:
                    timeout = deadline - time.monotonic()
                    if timeout < 0:
                        self.handle_timeout()
                        return

    def _handle_request_noblock(self) -> None:
        """Handle one request, the socket being readable."""
        try:
            request, client_address = self.get_request()
        except OSError:
            return
        if self.verify_request(request, client_address):
            try:
                self.process_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
                self.shutdown_request(request)
            except BaseException:
                self.shutdown_request(request)
                raise
        else:
            self.shutdown_request(request)

    def get_request(self) -> tuple[Any, Any]:
        """Take the next request: (request, client_address). Overridden by the socket classes."""
        raise NotImplementedError

    def fileno(self) -> int:
        """The descriptor serve_forever and handle_request wait on."""
        raise NotImplementedError

    def handle_timeout(self) -> None:
        """Called when handle_request() waited ``timeout`` for nothing. May be overridden."""

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Whether to process the request (True). May be overridden."""
        return True

    def process_request(self, request: Any, client_address: Any) -> None:
        """Handle the request, then shut it down. Overridden by the mixins."""
        self.finish_request(request, client_address)
        self.shutdown_request(request)

    def server_close(self) -> None:
        """Clean up the server. May be overridden."""

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handle the request by instantiating RequestHandlerClass."""
        self.RequestHandlerClass(request, client_address, self)

    def shutdown_request(self, request: Any) -> None:
        """End the request (close it, for the base class)."""
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        """Clean up one request. May be overridden."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """The handler raised: print the traceback to stderr and go on. May be overridden.

        A request that timed out (the handler's ``timeout``) is one line, not a traceback.
        """
        error = sys.exc_info()[1]
        if isinstance(error, TimeoutError):
            print(f"Request from {client_address} timed out: {error}", file=sys.stderr)
            return
        print("-" * 40, file=sys.stderr)
        print("Exception occurred during processing of request from", client_address, file=sys.stderr)
        traceback.print_exc()
        print("-" * 40, file=sys.stderr)

    def __enter__(self) -> BaseServer:
        return self

    def __exit__(self, *args: object) -> None:
        self.server_close()


def _drain(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while sock.recv(4096):
            pass


class TCPServer(BaseServer):
    """A server on a stream socket: bind, listen, accept, one request per connection."""

    address_family: int = socket.AF_INET
    socket_type: int = socket.SOCK_STREAM
    request_queue_size = 5
    allow_reuse_address = False
    allow_reuse_port = False

    def __init__(
        self,
        server_address: Any,
        RequestHandlerClass: RequestHandlerFactory,
        bind_and_activate: bool = True,
    ) -> None:
        """May be extended, do not override."""
        BaseServer.__init__(self, server_address, RequestHandlerClass)
        self.socket = socket.socket(self.address_family, self.socket_type)
        if bind_and_activate:
            try:
                self.server_bind()
                self.server_activate()
            except BaseException:
                self.server_close()
                raise

    def server_bind(self) -> None:
        """Bind the socket (with the reuse options asked for); ``server_address`` becomes the
        address bound, the real port for port 0. May be overridden."""
        if self.allow_reuse_address and hasattr(socket, "SO_REUSEADDR"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.allow_reuse_port and hasattr(socket, "SO_REUSEPORT"):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()

    def server_activate(self) -> None:
        """Listen, with a backlog of ``request_queue_size``. May be overridden."""
        self.socket.listen(self.request_queue_size)

    def server_close(self) -> None:
        self.socket.close()

    def fileno(self) -> int:
        return self.socket.fileno()

    def get_request(self) -> tuple[Any, Any]:
        return self.socket.accept()

    def shutdown_request(self, request: Any) -> None:
        """Send our end of stream (whatever the handler left open), then close."""
        try:
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the peer went first
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        request.close()


class UDPServer(TCPServer):
    """A server on a datagram socket: each datagram is a request, ``(data, socket)``."""

    allow_reuse_address = False
    allow_reuse_port = False
    socket_type: int = socket.SOCK_DGRAM
    max_packet_size = 8192

    def get_request(self) -> tuple[Any, Any]:
        data, client_address = self.socket.recvfrom(self.max_packet_size)
        return (data, self.socket), client_address

    def server_activate(self) -> None:
        pass  # nothing to listen for

    def shutdown_request(self, request: Any) -> None:
        self.close_request(request)

    def close_request(self, request: Any) -> None:
        pass  # the socket is the server's


class _Workers:
    """The threads of a ThreadingMixIn server: how many run, and which to join at close."""

    def __init__(self) -> None:
        self.running = 0
        self.joinable: set[threading.Thread] = set()
        self.changed = threading.Condition()
        #: each handler's stream socket and when its client connected (for shedding)
        self.requests: dict[threading.Thread, tuple[socket.socket, float]] = {}

    def reserve(self, limit: int) -> None:
        """Count one more, waiting while ``limit`` run (only handle_request ever waits)."""
        with self.changed:
            while self.running >= limit:
                self.changed.wait()
            self.running += 1

    def release(self, thread: threading.Thread) -> int:
        """One fewer; how many ran before."""
        with self.changed:
            self.joinable.discard(thread)
            self.requests.pop(thread, None)
            before = self.running
            self.running -= 1
            self.changed.notify()
            return before

    def join(self) -> None:
        with self.changed:
            threads = list(self.joinable)
        for thread in threads:
            thread.join()


class ThreadingMixIn:
    """Handle each request in a new thread; at most ``max_threads`` at once.

    Beyond the standard library: over ``max_threads`` (finite by default) the loop
    stops accepting and newcomers wait in the listen backlog; finished threads are
    forgotten at once, and ``server_close`` joins only those still running (when
    ``block_on_close`` and not ``daemon_threads``, as documented).

    At the bound, while a newcomer waits, clients that move almost nothing are shed
    (where the system says how much a connection moved: Linux's ``TCP_INFO``): a
    stream client connected for ``shed_after`` seconds or more whose bytes, both ways,
    average under ``shed_below_rate`` a second has its input ended (the handler reads
    the end of stream, as if the client had closed) and a line on stderr says so. A
    slowloris that drips a byte a second, or an idle keep-alive, would otherwise hold
    its thread for as long as it likes, since the handler's ``timeout`` is per read.
    ``shed_below_rate = None`` never sheds.
    """

    daemon_threads = False
    block_on_close = True
    max_threads = DEFAULT_MAX_THREADS
    shed_below_rate: float | None = 64.0
    shed_after = 10.0

    def _workers(self) -> _Workers:
        workers: _Workers | None = self.__dict__.get("_socketkit_workers")
        if workers is None:
            workers = self.__dict__.setdefault("_socketkit_workers", _Workers())
        return workers

    def _accepting(self) -> bool:
        workers = self._workers()
        if workers.running < self.max_threads:
            return True
        if self.shed_below_rate is not None and _waiting(self.socket):  # type: ignore[attr-defined]
            _shed(workers, self.shed_below_rate, self.shed_after)
        return False  # (the loop looks again at least every poll_interval)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """What each thread runs: finish_request, handle_error on failure, shutdown_request."""
        try:
            self.finish_request(request, client_address)  # type: ignore[attr-defined]
        except Exception:
            self.handle_error(request, client_address)  # type: ignore[attr-defined]
        finally:
            workers = self._workers()
            with workers.changed:  # not shed once it is being closed
                workers.requests.pop(threading.current_thread(), None)
            self.shutdown_request(request)  # type: ignore[attr-defined]

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start a thread to process the request."""
        workers = self._workers()
        workers.reserve(self.max_threads)
        thread = threading.Thread(target=self._run_thread, args=(request, client_address))
        thread.daemon = self.daemon_threads
        with workers.changed:
            if not thread.daemon and self.block_on_close:
                workers.joinable.add(thread)
            if isinstance(request, socket.socket) and request.type == socket.SOCK_STREAM:
                workers.requests[thread] = (request, time.monotonic())
        try:
            thread.start()
        except BaseException:
            workers.release(thread)
            raise

    def _run_thread(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            if self._workers().release(threading.current_thread()) >= self.max_threads:
                self._wake_loop()  # type: ignore[attr-defined] # the loop stopped accepting: resume

    def server_close(self) -> None:
        super().server_close()  # type: ignore[misc]
        self._workers().join()


#: struct tcp_info (linux/tcp.h): tcpi_bytes_acked and tcpi_bytes_received, since Linux 4.1
_TCP_INFO_SIZE = 136
_BYTES_ACKED_AT = 120
_BYTES_RECEIVED_AT = 128


def _bytes_moved(sock: socket.socket) -> int | None:
    """Bytes the client acknowledged plus bytes it sent, as the kernel counts them; None
    where the system does not say."""
    option = getattr(socket, "TCP_INFO", None)
    if option is None:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, option, _TCP_INFO_SIZE)
    except OSError:
        return None
    if len(info) < _TCP_INFO_SIZE:
        return None
    acked, received = struct.unpack_from("QQ", info, _BYTES_ACKED_AT)
    return int(acked + received)


def _waiting(listener: socket.socket) -> bool:
    """Whether a connection waits in ``listener``'s backlog (a look that does not block)."""
    try:
        return bool(select.select([listener], [], [], 0)[0])
    except (OSError, ValueError):
        return False


def _shed(workers: _Workers, below: float, after: float) -> None:
    """End the input of every handler's client that has moved under ``below`` bytes a second
    since it connected, ``after`` seconds ago or more (the lock keeps its socket open)."""
    now = time.monotonic()
    with workers.changed:
        for thread, (sock, since) in list(workers.requests.items()):
            age = now - since
            if age < after:
                continue
            moved = _bytes_moved(sock)
            if moved is None or moved / age >= below:
                continue
            del workers.requests[thread]
            try:
                peer = sock.getpeername()
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                continue
            print(
                f"Request from {peer} shed: {moved} bytes in {age:.0f}s while every thread was taken",
                file=sys.stderr,
            )


if hasattr(os, "fork"):

    class ForkingMixIn:
        """Handle each request in a new process; at most ``max_children`` at once.

        Beyond the standard library: each child is reaped the moment it exits (a pidfd
        watched by serve_forever, where the OS has pidfds); only this server's own
        children are waited for; at ``max_children`` the loop stops accepting instead
        of blocking in ``waitpid``.
        """

        timeout: float | None = 300
        active_children: set[int] | None = None
        max_children = 40
        block_on_close = True

        def _pidfds(self) -> dict[int, int]:
            pidfds: dict[int, int] | None = self.__dict__.get("_socketkit_pidfds")
            if pidfds is None:
                pidfds = self.__dict__.setdefault("_socketkit_pidfds", {})
            return pidfds

        def _accepting(self) -> bool:
            return self.active_children is None or len(self.active_children) < self.max_children

        def _reaped(self, pid: int) -> None:
            """``pid`` is gone: forget it and its pidfd."""
            if self.active_children is not None:
                self.active_children.discard(pid)
            pidfd = self._pidfds().pop(pid, None)
            if pidfd is not None:
                selector: selectors.BaseSelector | None = getattr(self, "_selector", None)
                if selector is not None:
                    with contextlib.suppress(KeyError, ValueError):
                        selector.unregister(pidfd)
                os.close(pidfd)

        def _reap(self, pid: int, blocking: bool) -> None:
            try:
                done, _ = os.waitpid(pid, 0 if blocking else os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                done = pid
            except OSError:
                return
            if done:
                self._reaped(pid)

        def collect_children(self, *, blocking: bool = False) -> None:
            """Reap the children that exited (all of them, waiting, with ``blocking``); while
            ``max_children`` or more run, wait for one to exit."""
            if self.active_children is None:
                return
            while len(self.active_children) >= self.max_children:
                self._wait_for_one()
            for pid in list(self.active_children):
                self._reap(pid, blocking)

        def _wait_for_one(self) -> None:
            """Block until one of our children exits, and reap it."""
            assert self.active_children
            pidfds = self._pidfds()
            if len(pidfds) == len(self.active_children):
                with _Selector() as selector:
                    for pid, pidfd in pidfds.items():
                        selector.register(pidfd, selectors.EVENT_READ, pid)
                    for key, _ in selector.select():
                        self._reap(key.data, blocking=True)
                return
            self._reap(next(iter(self.active_children)), blocking=True)

        def handle_timeout(self) -> None:
            self.collect_children()

        def service_actions(self) -> None:
            self.collect_children()

        def process_request(self, request: Any, client_address: Any) -> None:
            """Fork a process to handle the request; the parent goes on at once."""
            if self.active_children is not None and len(self.active_children) >= self.max_children:
                self.collect_children()  # handle_request(): wait for a slot
            pid = os.fork()
            if pid:
                if self.active_children is None:
                    self.active_children = set()
                self.active_children.add(pid)
                self._watch_child(pid)
                self.close_request(request)  # type: ignore[attr-defined]
                return
            # The child: it handles the request and exits, never returning into the loop.
            status = 1
            try:
                self.finish_request(request, client_address)  # type: ignore[attr-defined]
                status = 0
            except Exception:
                self.handle_error(request, client_address)  # type: ignore[attr-defined]
            finally:
                try:
                    self.shutdown_request(request)  # type: ignore[attr-defined]
                finally:
                    os._exit(status)

        def _watch_child(self, pid: int) -> None:
            """Reap ``pid`` as soon as it exits: its pidfd in serve_forever's selector."""
            pidfd_open = getattr(os, "pidfd_open", None)
            if pidfd_open is None:
                return  # service_actions reaps, at each wake-up of the loop
            try:
                pidfd = pidfd_open(pid)
            except OSError:  # an old kernel
                return
            self._pidfds()[pid] = pidfd
            selector: selectors.BaseSelector | None = getattr(self, "_selector", None)
            if selector is not None:
                selector.register(pidfd, selectors.EVENT_READ, lambda: self._reap(pid, blocking=True))

        def server_close(self) -> None:
            super().server_close()  # type: ignore[misc]
            self.collect_children(blocking=self.block_on_close)
            for pidfd in self._pidfds().values():
                os.close(pidfd)
            self._pidfds().clear()

    class ForkingUDPServer(ForkingMixIn, UDPServer):
        pass

    class ForkingTCPServer(ForkingMixIn, TCPServer):
        pass


class ThreadingUDPServer(ThreadingMixIn, UDPServer):
    pass


class ThreadingTCPServer(ThreadingMixIn, TCPServer):
    pass


if hasattr(socket, "AF_UNIX"):

    class UnixStreamServer(TCPServer):
        address_family = socket.AF_UNIX

    class UnixDatagramServer(UDPServer):
        address_family = socket.AF_UNIX

    class ThreadingUnixStreamServer(ThreadingMixIn, UnixStreamServer):
        pass

    class ThreadingUnixDatagramServer(ThreadingMixIn, UnixDatagramServer):
        pass

    if hasattr(os, "fork"):

        class ForkingUnixStreamServer(ForkingMixIn, UnixStreamServer):
            pass

        class ForkingUnixDatagramServer(ForkingMixIn, UnixDatagramServer):
            pass


class BaseRequestHandler:
    """One request: ``setup()``, ``handle()``, then ``finish()`` (even if handle raised).

    ``timeout``: on a stream socket, seconds each read may wait for the client before
    it raises ``TimeoutError`` (the standard library has none: a silent client holds
    the handler forever). ``timeout = None`` on the class restores that; ``setup()`` may
    set its own.
    """

    timeout: float | None = DEFAULT_HANDLER_TIMEOUT

    def __init__(self, request: Any, client_address: Any, server: BaseServer) -> None:
        self.request = request
        self.client_address = client_address
        self.server = server
        if (
            self.timeout is not None
            and isinstance(request, socket.socket)
            and request.type == socket.SOCK_STREAM
        ):
            request.settimeout(self.timeout)
        self.setup()
        try:
            self.handle()
        finally:
            self.finish()

    def setup(self) -> None:
        pass

    def handle(self) -> None:
        pass

    def finish(self) -> None:
        pass


class StreamRequestHandler(BaseRequestHandler):
    """A stream request with file objects: ``rfile`` (buffered by ``rbufsize``) and
    ``wfile`` (unbuffered by default, every write sent at once)."""

    rbufsize = -1
    wbufsize = 0
    disable_nagle_algorithm = False

    def setup(self) -> None:
        self.connection: socket.socket = self.request
        if self.timeout is not None:
            self.connection.settimeout(self.timeout)
        if self.disable_nagle_algorithm:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        self.rfile: io.BufferedIOBase = self.connection.makefile("rb", self.rbufsize)
        self.wfile: io.BufferedIOBase
        if self.wbufsize == 0:
            self.wfile = _SocketWriter(self.connection)
        else:
            self.wfile = self.connection.makefile("wb", self.wbufsize)

    def finish(self) -> None:
        if not self.wfile.closed:
            try:
                self.wfile.flush()
            except OSError:
                pass  # the client went away: what was buffered cannot reach it
        self.wfile.close()
        self.rfile.close()


class _SocketWriter(io.BufferedIOBase):
    """An unbuffered writer: each write() is one sendall()."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._sock.sendall(b)
        with memoryview(b) as view:
            return view.nbytes

    def fileno(self) -> int:
        return self._sock.fileno()


class DatagramRequestHandler(BaseRequestHandler):
    """A datagram request with file objects: ``rfile`` reads the datagram, and what is
    written to ``wfile`` goes back to the client as one datagram."""

    def setup(self) -> None:
        self.packet, self.socket = self.request
        self.rfile = io.BytesIO(self.packet)
        self.wfile = io.BytesIO()

    def finish(self) -> None:
        self.socket.sendto(self.wfile.getvalue(), self.client_address)
