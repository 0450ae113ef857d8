"""A prefork worker: the process side of ``engine="prefork"``.

Why a module of its own: everything here runs in the forked child and nowhere
else, and the child must never return into the parent's code, so its one entry
point, :func:`run_worker`, ends in ``os._exit`` whatever happens.

The worker talks to its master over one ``SOCK_SEQPACKET`` socket pair
(message boundaries, and an end of stream the moment the master is gone):
JSON messages ``{"ready": true}``, then ``{"beat": ...}`` about twice a second
carrying its stats, then ``{"final": ...}`` before it exits. The exit code is
the contract with the master: 0 a clean stop, :data:`BOOT_FAILED` it never
served (the master halts: another copy would fail the same way), anything
else a crash (the master starts another).

Signals: SIGTERM stops gracefully and serves what waits in the backlogs;
SIGUSR1 retires (the master is replacing this worker: stop accepting, finish
the connections held, leave the backlog to the others); SIGQUIT stops at once
(the master's grace period was cut short); SIGINT stops, and a second SIGINT
cuts what is left (Ctrl-C reaches every process of the group).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import select
import signal
import socket
import sys
import threading
import traceback
from types import FrameType
from typing import Any, NoReturn

from ..endpoints import Listener
from ..engines.base import Engine, log
from ..plan import ServingPlan
from ..stats import StatsRecorder

__all__ = ["BEAT_INTERVAL", "BOOT_FAILED", "WorkerPlan", "run_worker"]

BOOT_FAILED = 3  # the exit code of a worker that never got to serve (as gunicorn's WORKER_BOOT_ERROR)
BEAT_INTERVAL = 0.5  # seconds between a worker's reports to its master


@dataclasses.dataclass
class WorkerPlan:
    """What a worker needs to serve: the server's plan, and its place among the workers."""

    index: int
    listeners: list[Listener]
    plan: ServingPlan  # what to serve, and the engine to serve it with
    channel: socket.socket  # this worker's end of the pair to the master
    close_after_fork: list[int]  # descriptors of the master's that the child must not hold
    timed: bool  # whether handler latency is counted (metrics are on)
    signal_mask: set[int | signal.Signals] = dataclasses.field(default_factory=set)  # restored once set up


def run_worker(plan: WorkerPlan) -> NoReturn:
    """Serve in this (forked) process until told to stop; never returns."""
    code = BOOT_FAILED
    try:
        engine = _boot(plan)
        code = 1  # from here a failure is a crash, not a boot failure
        beats = threading.Thread(target=_beat, args=(plan, engine), name="socketkit-heartbeat", daemon=True)
        beats.start()
        engine.serve()
        _send(plan.channel, {"final": _report(engine)})
        code = 0
    except BaseException as exc:
        if code == BOOT_FAILED:
            print(f"socketkit worker {plan.index} (pid {os.getpid()}) failed to boot: {exc}", file=sys.stderr)
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _boot(plan: WorkerPlan) -> Engine:
    for fd in plan.close_after_fork:
        try:
            os.close(fd)
        except OSError:
            pass
    random.seed()  # not the master's sequence
    log.addFilter(_NameTheWorker(plan.index))
    for listener in plan.listeners:
        listener.shared()
    stats = StatsRecorder()
    if plan.timed:
        stats.count_latency()
    serving = plan.plan
    if serving.worker_init is not None:
        serving.worker_init()
    engine = serving.engine(plan.listeners, stats)
    _install_signals(engine, serving.limits.grace)
    signal.pthread_sigmask(signal.SIG_SETMASK, plan.signal_mask)  # what arrived meanwhile runs now
    return engine


class _NameTheWorker(logging.Filter):
    """Every socketkit log line of a worker starts with "worker N: "."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.prefix = f"worker {index}: "

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.prefix + str(record.msg)
        return True


def _install_signals(engine: Engine, grace: float) -> None:
    interrupts = 0

    def stop(signum: int, frame: FrameType | None) -> None:
        engine.stop(grace)

    def retire(signum: int, frame: FrameType | None) -> None:
        engine.drain_backlog = False
        engine.stop(grace)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupts
        interrupts += 1
        engine.stop(grace if interrupts == 1 else 0.0)

    def now(signum: int, frame: FrameType | None) -> None:
        engine.stop(0.0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, retire)
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGQUIT, now)
    for name in ("SIGHUP", "SIGTTIN", "SIGTTOU"):  # the master's to act on
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    # The master's wake-up descriptor was inherited and is closed here. The handlers run in
    # this main thread, which runs the engine's loop, and stop() wakes that loop itself.
    signal.set_wakeup_fd(-1)


def _report(engine: Engine) -> dict[str, Any]:
    """This worker's stats and handler latency, as JSON-ready data."""
    report: dict[str, Any] = {"stats": dataclasses.asdict(engine.stats.snapshot())}
    latency = engine.stats.latency_by_listener()
    if latency:
        report["latency"] = {url: histogram.snapshot() for url, histogram in latency.items()}
    return report


def _send(channel: socket.socket, message: dict[str, Any]) -> None:
    try:
        channel.send(json.dumps(message).encode())
    except OSError:
        pass  # the master is gone or not reading: the next beat says it again


def _beat(plan: WorkerPlan, engine: Engine) -> None:
    """Report to the master while the engine serves; stop the engine if the master dies.

    On an engine whose loop runs the handlers, a beat is sent only once that loop has
    run a call queued for it: a loop stuck in a handler goes silent, and the master
    replaces the worker.
    """
    channel = plan.channel
    alive = threading.Event()

    def mark() -> None:
        alive.set()

    ready = False
    while not engine.stopping:
        if engine.loop_runs_handlers:
            alive.clear()
            engine.call_soon_threadsafe(mark)
        if not ready and (not engine.loop_runs_handlers or alive.wait(BEAT_INTERVAL)):
            _send(channel, {"ready": True})  # at once, not a beat later: a SIGHUP waits for it
            ready = True
        readable, _, _ = select.select([channel], [], [], BEAT_INTERVAL)
        if readable:
            try:
                gone = not channel.recv(64)
            except OSError:
                gone = True
            if gone:  # the master exited: stop serving, as it would have told us to
                log.warning("the master process is gone; stopping")
                engine.stop(plan.plan.limits.grace)
                return
        if engine.loop_runs_handlers and not alive.is_set():
            continue  # the loop did not answer in time: no beat
        if not ready:
            _send(channel, {"ready": True})
            ready = True
        _send(channel, {"beat": _report(engine)})
