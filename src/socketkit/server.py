"""Server: endpoints + handler + engine + limits, and its lifecycle.

Why it is built this way: binding happens in the caller's thread (in
``start()`` or ``serve_forever()``), so "address in use" is raised where the
user can catch it and ``server.url`` names the real port at once. The engine is
chosen by name and checked against the handler before anything is bound, so a
blocking handler on an event loop fails at construction with a message that
says what to do. ``stop()`` takes no lock and never waits for the thread it is
called from, so it is safe from any thread, a handler, or a signal handler.
"""

from __future__ import annotations

import functools
import importlib
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType, TracebackType
from typing import Any

from .access import AccessList
from .closing import peer_list
from .codecs import Codec, HttpRequest, Raw
from .endpoints import Address, Endpoint, Listener, adopt, bind, describe_socket, is_address, parse
from .engines.base import current, log
from .engines.runner import Runner
from .errors import SocketkitError
from .gracecut import EXIT_CUT, GraceCut, where
from .handlers import Handler, adapt
from .layers import LayerFactory
from .layers.proxy import DEFAULT_TRUSTED, ProxyProtocolLayer, trusted_networks
from .layers.tls import TlsLayer, require_modern
from .limits import Limits
from .loader import is_file_spec, load_handler
from .plan import ServingPlan
from .stats import LATENCY_BUCKETS, LatencyHistogram, Stats, StatsRecorder
from .systemd import Watchdog, listen_fds, notify, watchdog_interval

__all__ = ["Server"]

_STOP_MARGIN = 1.0  # seconds stop() waits beyond the grace period for the engine to return
#: seconds past the grace deadline at which a process whose handler blocks the loop is ended
_CUT_MARGIN = 0.5
_WAKEUP_FD = -1  # key, in the saved signal state, of the previous signal.set_wakeup_fd


class Server:
    """A server for one handler on one or more endpoints.

    Args:
        endpoints: one URL or a list (``"tcp://127.0.0.1:0"``, ``"udp://[::1]:9999"``,
            ``"unix:///run/app.sock"``...); ``fd://N`` or ``systemd://[name]`` for
            inherited sockets; or a socket object: a bound or listening one is
            listened on, a connected one (a ``socketpair()`` end) is served as
            that connection. The server owns and closes the sockets given. One
            that serves only connected sockets stops once they have closed.
        handler: a function ``(message, conn) -> reply``, a :class:`Protocol`
            subclass or instance, or a :func:`blocking` function ``(conn)``; the
            function, or the Protocol's on_connect, on_message and on_close, may be an
            ``async def`` on the asyncio engines.
        codec: how bytes become messages (default :class:`Raw`).
        engine: ``iterative``, ``threads``, ``select``, ``poll``, ``epoll``,
            ``reactor``, ``pool``, ``asyncio``, ``uvloop``, ``prefork`` or ``auto``
            (the reactor; ``threads`` for blocking handlers; ``uvloop``, or
            ``asyncio`` without it, for ``async def`` ones).
        limits: the bounds the server enforces (default :class:`Limits` ()).
        layers: byte layers between each connection's socket and its codec,
            nearest the socket first: callables that make one
            :class:`~socketkit.layers.Layer` per connection (the seam TLS and
            the PROXY protocol use).
        tls: the ``ssl.SSLContext`` for the ``tls://`` endpoints (see
            :func:`socketkit.tls.server_context`); raised to TLS 1.2 at least.
        trusted_proxies: who may send the PROXY header on ``?proxy=`` endpoints
            (CIDRs; default loopback only).
        allow: if given, only peers in these addresses or networks (``10.0.0.0/8``,
            ``::1``) may connect, as ncat's ``--allow``; behind a PROXY header, the
            real peer's address is checked. Others are closed at once, counted as
            rejected and logged.
        deny: peers in these addresses or networks may not connect (over ``allow``).
        metrics: where to serve Prometheus metrics (``GET /metrics``), e.g.
            ``tcp://127.0.0.1:9100``; needs ``pip install 'socketkit[metrics]'``.
        workers: serve with a master process and this many worker processes, each
            running ``engine`` on the same sockets (``"auto"``: one per usable core);
            ``engine="prefork"`` alone means ``workers="auto"`` with the reactor. Limits
            apply per worker. See :mod:`socketkit.supervisor.prefork`.
        worker_timeout: seconds a worker may go without a heartbeat (its loop stuck
            in a handler) before the master kills and replaces it.
        worker_init: called in each worker process once it is forked, before it
            serves (open per-process resources here: database connections must not
            be shared across a fork); if it raises, the worker failed to boot and the
            server stops with that error.

    A handler given as ``"module:attr"`` is imported here; with workers, SIGHUP
    imports its module again (``importlib.reload``) before replacing the workers,
    so they run the new code; if that fails, the running workers are kept.

    Raises:
        ValueError: a bad URL, an unknown engine, or a handler the engine cannot run.
        TypeError: ``handler`` or ``codec`` is of the wrong kind.
    """

    def __init__(
        self,
        endpoints: Address | socket.socket | Iterable[Address | socket.socket],
        handler: object,
        *,
        codec: Codec | None = None,
        engine: str = "auto",
        limits: Limits | None = None,
        layers: Iterable[LayerFactory] = (),
        tls: ssl.SSLContext | None = None,
        trusted_proxies: Iterable[str] = DEFAULT_TRUSTED,
        allow: Iterable[str] | None = None,
        deny: Iterable[str] = (),
        metrics: Address | None = None,
        workers: int | str | None = None,
        worker_timeout: float = 30.0,
        worker_init: Callable[[], object] | None = None,
    ) -> None:
        single = is_address(endpoints) or isinstance(endpoints, socket.socket)
        urls: list[Any] = [endpoints] if single else list(endpoints)  # type: ignore[arg-type]
        if not urls:
            raise ValueError("a server needs at least one endpoint URL, e.g. tcp://127.0.0.1:8888")
        self.endpoints: list[Endpoint] = []
        #: sockets bound elsewhere (systemd, the caller), by their index in ``endpoints``
        self._adopted: dict[int, socket.socket] = {}
        for url in urls:
            for endpoint, sock in _resolve(url):
                if sock is not None:
                    self._adopted[len(self.endpoints)] = sock
                self.endpoints.append(endpoint)
        #: "module:attr" the handler was loaded from, to load again on SIGHUP (prefork)
        self._handler_spec = handler if isinstance(handler, str) and ":" in handler else None
        adapted = load_handler(self._handler_spec) if self._handler_spec else adapt(handler)
        #: called on SIGHUP in the serving process, before a prefork server replaces its
        #: workers (the CLI reloads TLS certificates here)
        self.reloaders: list[Callable[[], None]] = []
        if codec is None:
            codec = Raw()
        if not isinstance(codec, Codec):
            raise TypeError(f"codec must be a socketkit codec such as Lines(), not {codec!r}")
        if limits is None:
            limits = Limits()
        if not isinstance(limits, Limits):
            raise TypeError(f"limits must be a socketkit.Limits, not {limits!r}")
        self.layers: tuple[LayerFactory, ...] = tuple(layers)
        self.tls = _check_tls(tls, self.endpoints)
        self.trusted_proxies = trusted_networks(trusted_proxies)
        #: what this server serves and how, checked (the engine and each worker are made from it)
        self.plan = ServingPlan.make(
            self.endpoints,
            adapted,
            codec,
            limits,
            engine,
            workers,
            worker_timeout,
            worker_init,
            AccessList.make(allow, deny),
        )
        if self.workers is not None and self._handler_spec is not None:
            self.reloaders.append(self._reload_handler)
        self._stats = StatsRecorder()
        self._listeners: list[Listener] = []
        self._watchdog: Watchdog | None = None
        self._grace_cut: GraceCut | None = None  # serve_forever owning the process: see gracecut
        self._engine: Runner | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._stopped = False
        self._failure: BaseException | None = None
        self._forced = False  # a second SIGINT forced the shutdown
        self._quiet = False  # a server's own metrics endpoint: it does not announce itself
        self._metrics: Server | None = None
        if metrics is not None:
            from .metrics import MetricsEndpoint  # noqa: PLC0415 - its dependency is optional

            self._stats.count_latency()
            self._metrics = Server(
                metrics, MetricsEndpoint(self), codec=HttpRequest(), engine=self.engine_name
            )
            self._metrics._quiet = True  # the serving line of this server names it
            if not all(endpoint.is_stream for endpoint in self._metrics.endpoints):
                raise ValueError(f"the metrics endpoint {metrics!r} must be a stream (tcp://, unix://)")

    # -- the plan's parts, as attributes ---------------------------------------------

    @property
    def handler(self) -> Handler:
        """The handler, adapted (its style known); setting it keeps the rest of the plan."""
        return self.plan.handler

    @handler.setter
    def handler(self, handler: Handler) -> None:
        self.plan = self.plan.with_handler(handler)

    @property
    def codec(self) -> Codec:
        """The codec that frames every connection's messages."""
        return self.plan.codec

    @property
    def limits(self) -> Limits:
        """The limits every connection is served under (per worker, with workers)."""
        return self.plan.limits

    @property
    def engine_name(self) -> str:
        """The engine that serves connections (in each worker, with workers)."""
        return self.plan.engine_name

    @property
    def workers(self) -> int | None:
        """Worker processes under a prefork master; None when this process serves."""
        return self.plan.workers

    @property
    def worker_timeout(self) -> float:
        """Seconds a worker may go without a heartbeat before the master replaces it."""
        return self.plan.worker_timeout

    # -- addresses and stats ---------------------------------------------------------

    @property
    def url(self) -> str:
        """The first endpoint's URL, with the real port once bound."""
        return self.urls[0]

    @property
    def urls(self) -> list[str]:
        """Every endpoint's URL, with real ports once bound."""
        if self._listeners:
            return [listener.url for listener in self._listeners]
        return [endpoint.url for endpoint in self.endpoints]

    @property
    def addresses(self) -> list[Any]:
        """The bound socket addresses (as ``getsockname()`` gives them)."""
        return [listener.address for listener in self._listeners]

    @property
    def latency(self) -> LatencyHistogram | None:
        """Handler time per message, on every listener, kept when a metrics endpoint is served."""
        if self._stats.latency is None:
            return None
        return LatencyHistogram.merged(list(self._stats.latency_by_listener().values()), LATENCY_BUCKETS)

    @property
    def latency_by_listener(self) -> dict[str, LatencyHistogram]:
        """Handler time per message for each listener (by URL), when a metrics endpoint is served."""
        return self._stats.latency_by_listener()

    @property
    def metrics_url(self) -> str | None:
        """Where the Prometheus metrics are served (``/metrics``), if they are."""
        return None if self._metrics is None else self._metrics.url

    @property
    def stats(self) -> Stats:
        """A snapshot of connection, traffic and error counters."""
        return self._stats.snapshot()

    # -- lifecycle -------------------------------------------------------------------

    def _prepare(self) -> Runner:
        with self._lock:
            if self._engine is not None:
                raise RuntimeError("this server was already started; a Server runs once")
            if self._stopped:
                raise RuntimeError("this server was stopped; create a new Server")
            listeners: list[Listener] = []
            try:
                for index, endpoint in enumerate(self.endpoints):
                    adopted = self._adopted.get(index)
                    listeners.append(bind(endpoint) if adopted is None else adopt(adopted, endpoint))
            except BaseException:
                for listener in listeners:
                    listener.close()
                raise
            for listener in listeners:
                listener.layer_factories = self._layers_for(listener.endpoint)
            if self._metrics is not None:
                try:
                    self._metrics.start()
                except BaseException:
                    for listener in listeners:
                        listener.close()
                    raise
            self._listeners = listeners
            engine = self._make_engine(listeners)
            self._engine = engine
        return engine

    def _make_engine(self, listeners: list[Listener]) -> Runner:
        if self.workers is None:
            return self.plan.engine(listeners, self._stats)
        from .supervisor.prefork import Supervisor  # noqa: PLC0415 - only prefork servers need it

        return Supervisor(listeners, self._stats, lambda: self.plan)

    def _reload_handler(self) -> None:
        """SIGHUP: import the handler's module again; on failure keep the running handler."""
        assert self._handler_spec is not None
        module_name = self._handler_spec.partition(":")[0]
        try:
            module = sys.modules.get(module_name)
            if module is not None and not is_file_spec(self._handler_spec):  # (a file is read anew)
                importlib.reload(module)
            self.handler = load_handler(self._handler_spec)
        except Exception as exc:  # a syntax error, an import error: what the user broke
            log.error("SIGHUP: cannot load %s again (%s); keeping the running code", self._handler_spec, exc)
            raise
        log.info("SIGHUP: loaded %s again", self._handler_spec)

    @property
    def worker_stats(self) -> dict[int, Stats]:
        """With workers: each live worker's stats (as it last reported them), by index."""
        engine = self._engine
        worker_stats = getattr(engine, "worker_stats", None)
        return worker_stats() if worker_stats is not None else {}

    def _layers_for(self, endpoint: Endpoint) -> tuple[LayerFactory, ...]:
        """The layers of a listener's connections, nearest the socket first: the PROXY
        header (it precedes everything), TLS, then the layers given (they see plaintext),
        then the codec's own (WebSocket's)."""
        factories = [*self.layers, *self.codec.layers()]
        if endpoint.is_tls:
            assert self.tls is not None
            factories.insert(0, functools.partial(TlsLayer, self.tls))
        if endpoint.proxy is not None:
            factories.insert(0, functools.partial(ProxyProtocolLayer, endpoint.proxy, self.trusted_proxies))
        return tuple(factories)

    def _announce(self) -> None:
        """Say the server is up; signal handlers, where there are any, are in place by now."""
        self._started.set()
        if self._quiet:
            return
        notify("READY=1")  # systemd (Type=notify): up; a no-op elsewhere
        interval = watchdog_interval()
        if interval is not None:
            self._watchdog = Watchdog(interval)
            self._watchdog.start()
        metrics = f"; metrics at {self._metrics.url}/metrics" if self._metrics is not None else ""
        log.info(
            "serving %s (engine %s, codec %s, handler %s%s)",
            ", ".join(listener.described for listener in self._listeners),
            self.engine_name
            if self.workers is None
            else f"{self.engine_name} in {self.workers} worker processes",
            self.codec.name,
            self.handler.described,
            metrics,
        )

    def start(self) -> Server:
        """Bind and serve in a background thread; returns the server (a context manager).

        Raises:
            BindError: an endpoint cannot be bound.
            RuntimeError: the server was already started or stopped.
        """
        engine = self._prepare()
        self._announce()
        thread = threading.Thread(target=self._serve, args=(engine,), name="socketkit-server", daemon=True)
        self._thread = thread
        thread.start()
        return self

    async def serve(self) -> None:
        """Serve on the running asyncio loop until stopped: for applications that own their
        loop (``engine="asyncio"`` or ``"uvloop"``; either serves on the running loop, whatever
        its kind). It returns once the server has drained.

        ``stop()`` ends it, from any thread or from a task on this loop (there it returns at
        once: the loop cannot wait for itself). No signal handlers are installed: the
        application's loop owns its signals (``loop.add_signal_handler(SIGTERM, server.stop)``).

        Raises:
            ValueError: the engine is not asyncio or uvloop.
            BindError: an endpoint cannot be bound.
        """
        from .engines.aio.asyncio_engine import AsyncioEngine  # noqa: PLC0415 - only asyncio servers need it

        if self.workers is not None:
            raise ValueError(
                "await server.serve() serves in this process, on the caller's loop: leave out "
                "workers, or run the workers with serve_forever()"
            )
        if not issubclass(self.plan.engine_class, AsyncioEngine):
            raise ValueError(  # noqa: TRY004 - a value (the engine's name) is wrong, as documented
                "await server.serve() runs on the caller's asyncio loop: use engine='asyncio' (or 'uvloop')"
            )
        engine = self._prepare()
        assert isinstance(engine, AsyncioEngine)
        self._announce()
        previous = getattr(current, "engine", None)
        current.engine = engine  # stop() from this thread must not wait for the loop it runs on
        try:
            await engine.serve_async()
        except BaseException as exc:
            self._failure = exc
            raise
        finally:
            current.engine = previous
            engine.release()
            self._served()

    def serve_forever(self) -> None:
        """Bind and serve in this thread until stopped.

        In the main thread, SIGINT and SIGTERM drain and return (connections
        get ``limits.grace`` seconds to finish). A second SIGINT forces: the
        open connections are cut and ``KeyboardInterrupt`` is raised, whatever
        a handler is doing (the CLI exits with 130, as a shell expects).

        Raises:
            BindError: an endpoint cannot be bound.
            KeyboardInterrupt: a second SIGINT forced the shutdown.
            SystemExit: a signal's stop cut a handler thread that would not return by the grace
                deadline (status 1; a handler that blocks this thread ends the process too).
        """
        engine = self._prepare()
        # Handlers go in before the server says it is serving: a supervisor that
        # stops it as soon as it is up gets a drain, not a kill.
        restore = self._install_signal_handlers(engine)
        try:
            self._announce()
            self._serve(engine)
        finally:
            for signum, previous in restore.items():
                if signum == _WAKEUP_FD:
                    signal.set_wakeup_fd(previous)
                else:
                    signal.signal(signum, previous)
        if self._failure is not None:
            raise self._failure
        if self._forced:  # the engine's loop took the KeyboardInterrupt as a handler's error
            raise KeyboardInterrupt
        if engine.abandoned and self._grace_cut is not None and self._grace_cut.armed:
            # A handler thread would not return by the deadline (the engine named it): the
            # process says so, as it does when a handler blocks the serving thread.
            log.critical("grace period over with a handler still running: exiting with status %d", EXIT_CUT)
            raise SystemExit(EXIT_CUT)

    def _serve(self, engine: Runner) -> None:
        current.engine = engine
        try:
            engine.serve()
        except KeyboardInterrupt:
            raise  # a forced shutdown (second SIGINT): not a failure of the engine
        except BaseException as exc:
            self._failure = exc
            # socketkit's own errors say what happened; anything else needs its traceback
            log.critical(
                "engine %s failed: %s",
                self.engine_name,
                exc,
                exc_info=None if isinstance(exc, SocketkitError) else exc,
            )
            engine.close_listeners()
        finally:
            self._served()

    def _served(self) -> None:
        """Serving ended: the watchdogs and the metrics endpoint stop; stop() may return."""
        if self._grace_cut is not None:
            self._grace_cut.finished()
        if self._watchdog is not None:
            self._watchdog.stop()
        if self._metrics is not None:
            self._metrics.stop(0)
        self._done.set()

    def _install_signal_handlers(self, engine: Runner) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        signals_seen = 0
        cut = self._grace_cut = self._process_deadline(engine) if self.workers is None else None

        def on_signal(signum: int, frame: FrameType | None) -> None:
            nonlocal signals_seen
            signals_seen += 1
            name = signal.Signals(signum).name
            if signals_seen == 1:
                notify("STOPPING=1")
                log.warning(
                    "%s: stopping; finishing %d open connection(s) within %gs (Ctrl-C again to force)",
                    name,
                    self._stats.connections_open,
                    self.limits.grace,
                )
                engine.stop(self.limits.grace)
                if cut is not None:
                    cut.arm(time.monotonic() + self.limits.grace)
            elif signum == signal.SIGINT:
                self._forced = True
                engine.force()
                log.warning(
                    "%s again: forcing shutdown, cutting %s", name, peer_list(engine.open_connections())
                )
                raise KeyboardInterrupt  # ends whatever runs on this thread, a handler included
            else:
                engine.stop(0)  # another SIGTERM: the grace period ends now
                if cut is not None:
                    cut.arm(time.monotonic())

        restore: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            restore[signum] = signal.signal(signum, on_signal)
        if self.reloaders or self.workers is not None:
            restore[signal.SIGHUP] = signal.signal(signal.SIGHUP, lambda signum, frame: self.reload())
        # The kernel may deliver the signal to any thread; CPython then only sets
        # a flag, and the handler runs when the main thread next wakes. The
        # wake-up fd (as asyncio uses it) makes the engine's loop wake at once.
        restore[_WAKEUP_FD] = signal.set_wakeup_fd(engine.wakeup_fileno, warn_on_full_buffer=False)
        return restore

    def _process_deadline(self, engine: Runner) -> GraceCut:
        """What ends this process at the grace deadline while a handler blocks the loop thread
        (this one, which serve_forever runs on); prefork's master kills its workers instead."""
        serving = threading.get_ident()

        def describe() -> str:
            running = where(serving)
            at = f" at {running}" if running else ""
            return (
                f"grace period over: handler {self.handler.name} still running{at}; "
                f"cutting {peer_list(engine.open_connections())}; exiting with status {EXIT_CUT}"
            )

        return GraceCut(describe, _CUT_MARGIN)

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let in-flight requests finish for ``grace`` seconds, close the rest.

        ``grace`` defaults to ``limits.grace``. Safe from any thread, from a
        handler and from a signal handler; before ``start()`` it only releases
        what was bound. Returns once the engine is done, or at once when called
        from the server's own threads.
        """
        if grace is None:
            grace = self.limits.grace
        self._stopped = True
        engine = self._engine
        if engine is None:
            for listener in self._listeners:
                listener.close()
            return
        notify("STOPPING=1")
        engine.stop(grace)
        if getattr(current, "engine", None) is engine:
            return  # called from the server's own thread: it cannot wait for itself
        if not self._done.wait(grace + _STOP_MARGIN):
            log.warning(
                "stop(): the engine is still running %gs after the grace period: "
                "a handler is stuck in its own code (its connection was cut)",
                _STOP_MARGIN,
            )

    def reload(self) -> None:
        """What SIGHUP does: run the reloaders, then, with workers, replace them one at a time.

        A reloader that raises stops the reload (the workers keep running the code they
        have); it says why in the log.
        """
        for reloader in self.reloaders:
            try:
                reloader()
            except Exception:
                return
        reload = getattr(self._engine, "reload", None)
        if reload is not None:
            reload()

    def wait_started(self, timeout: float | None = None) -> bool:
        """Wait until the endpoints are bound (useful with serve_forever in another thread).

        Returns False if ``timeout`` passed first.
        """
        return self._started.wait(timeout)

    @property
    def running(self) -> bool:
        """True between start()/serve_forever() and the end of shutdown."""
        return self._engine is not None and not self._done.is_set()

    def __enter__(self) -> Server:
        if self._engine is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped" if self._stopped else "new"
        return f"<Server {' '.join(self.urls)} engine={self.engine_name} {state}>"


def _check_tls(tls: ssl.SSLContext | None, endpoints: list[Endpoint]) -> ssl.SSLContext | None:
    """The TLS context, checked against the endpoints that would use it."""
    wants_tls = [endpoint.url for endpoint in endpoints if endpoint.is_tls]
    if tls is None:
        if wants_tls:
            raise ValueError(
                f"{wants_tls[0]} needs a TLS context: Server(..., tls=socketkit.tls.server_context(cert, key))"
            )
        return None
    if not isinstance(tls, ssl.SSLContext):
        raise TypeError(f"tls must be an ssl.SSLContext, not {type(tls).__name__}")
    if not wants_tls:
        if not any(endpoint.is_stream for endpoint in endpoints):
            raise ValueError("TLS over datagrams is not available (the standard library has no DTLS)")
        raise ValueError("Server(tls=...) serves TLS on tls:// endpoints; name one (tcp:// stays plaintext)")
    return require_modern(tls)


def _resolve(url: Any) -> list[tuple[Endpoint, socket.socket | None]]:
    """The endpoints one item of ``Server(endpoints)`` names, with the socket of each that
    is bound already: a URL or shorthand (bound later), a socket object, ``fd://N`` (an
    inherited descriptor), or ``systemd://[name]`` (socket activation: every socket passed,
    or those named ``name`` by FileDescriptorName=)."""
    if isinstance(url, socket.socket):
        return [(describe_socket(url), url)]
    if isinstance(url, str) and url.startswith("fd://"):
        number = url[len("fd://") :]
        if not number.isdigit():
            raise ValueError(f"{url!r}: write fd://N with N an open socket's descriptor number")
        try:
            sock = socket.socket(fileno=int(number))
        except OSError as exc:
            raise ValueError(f"{url!r}: descriptor {number} is not an open socket ({exc.strerror})") from None
        return [(describe_socket(sock), sock)]
    if isinstance(url, str) and url.startswith("systemd://"):
        name = url[len("systemd://") :]
        passed = [(label, sock) for label, sock in listen_fds() if not name or label == name]
        if not passed:
            raise ValueError(
                f"{url!r}: systemd passed no socket{' named ' + repr(name) if name else ''} "
                "(run from a .socket unit, or systemd-socket-activate; LISTEN_FDS is not set for us)"
            )
        return [(describe_socket(sock), sock) for _, sock in passed]
    return [(parse(url), None)]
