"""prefork: a master process and N workers, each running an inner engine on the same sockets.

The master, as gunicorn's arbiter does, owns the listening sockets and forks
the workers; every worker runs the chosen engine (the reactor by default) on
those very sockets, and the kernel hands each new connection to one of them.
The sockets are shared, not one per worker with SO_REUSEPORT: with
per-worker sockets the kernel resets the connections queued on a socket that
closes (before Linux's opt-in ``tcp_migrate_req``), so a worker replaced or
killed would lose the connections waiting for it; a shared socket outlives
every worker, so a restart refuses nothing.

The master never serves. It

- restarts a worker that dies, after a pause that grows while workers keep dying
  young; halts with a clear message if one fails to boot (exit code
  ``BOOT_FAILED``: another copy would fail the same way);
- kills a worker whose heartbeat stops for ``worker_timeout`` (its loop is stuck
  in a handler) and starts another;
- on stop (SIGTERM, SIGINT) stops every worker gracefully within ``grace``, then
  kills what is left; a second SIGINT kills at once;
- on SIGHUP replaces the workers one at a time: a new one first, and only once
  it is ready is the old one retired (it stops accepting and finishes its
  connections), so no connection is refused; the server's reloaders (TLS
  certificates, the handler's module) run first, in the master, so a broken
  reload leaves the running workers as they are;
- on SIGTTIN/SIGTTOU adds or removes a worker;
- sums the stats the workers report with their heartbeats (``Server.stats``,
  ``--stats``, the metrics endpoint), keeps each worker's too
  (``Server.worker_stats``), and keeps the last report of workers that exited.

Workers notice the master's death through their channel (end of stream) and
stop; a forked child never returns into the master's code (``supervisor/worker``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from ..closing import log
from ..endpoints import Listener
from ..engines.runner import Runner
from ..errors import SocketkitError
from ..plan import ServingPlan, usable_cores
from ..stats import LatencyHistogram, Stats, StatsRecorder, StatsSource, stats_from_dict, sum_stats
from .worker import BOOT_FAILED, WorkerPlan, run_worker

__all__ = ["Supervisor", "usable_cores"]

_MAX_BACKOFF = 5.0  # seconds: the longest pause before a dead worker is replaced
_YOUNG = 1.0  # a worker that dies younger than this (seconds) makes the next pause longer
_KILL_MARGIN = 1.0  # seconds after the grace period before workers still running are killed
_CHANNEL_BUFFER = 1 << 20
#: blocked from just before a fork until the child has its own handlers
_WORKER_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1}


@dataclasses.dataclass(eq=False)
class _Worker:
    index: int
    pid: int
    channel: socket.socket
    born: float
    pidfd: int | None = None
    ready: bool = False
    last_beat: float = 0.0
    retiring: bool = False
    killed: bool = False
    stats: Stats = dataclasses.field(default_factory=Stats)
    latency: dict[str, tuple[list[int], float]] = dataclasses.field(default_factory=dict)


class _Totals(StatsSource):
    """The workers' reports, summed: what the master's Server.stats shows."""

    def __init__(self, engine: Supervisor) -> None:
        self.engine = engine

    def stats(self) -> Stats:
        return sum_stats([self.engine.retired_stats, *(w.stats for w in list(self.engine.workers.values()))])

    def latency(self) -> dict[str, LatencyHistogram]:
        merged: dict[str, LatencyHistogram] = {}
        reports = [self.engine.retired_latency, *(w.latency for w in list(self.engine.workers.values()))]
        for report in reports:
            for url, (counts, seconds) in report.items():
                merged.setdefault(url, LatencyHistogram()).add(counts, seconds)
        return merged


class Supervisor(Runner):
    """The master of a prefork server (see the module notes): it serves nothing itself."""

    def __init__(
        self,
        listeners: list[Listener],
        stats: StatsRecorder,
        plan: Callable[[], ServingPlan],
    ) -> None:
        super().__init__(listeners, stats)
        #: the plan new workers serve (its handler changes when SIGHUP reloads the handler's module)
        self.plan = plan
        first = plan()
        assert first.workers is not None
        self.target = first.workers
        self.limits = first.limits
        self.worker_timeout = first.worker_timeout
        self.workers: dict[int, _Worker] = {}  # by pid
        #: what the workers that exited had counted, summed (one value, however many exit)
        self.retired_stats = Stats()
        self.retired_latency: dict[str, tuple[list[int], float]] = {}
        self.failure: str | None = None
        self._selector = selectors.DefaultSelector()
        self._respawn_at: dict[int, float] = {}  # worker index -> when to start it again
        self._deaths = 0  # workers that died young in a row
        self._rolling: list[_Worker] = []  # SIGHUP: workers still to replace
        self._replacement: tuple[_Worker, _Worker] | None = None  # (new, old): the roll waits for new
        self._reload = False
        self._resize = 0
        self._terminated = False  # the workers were told to stop
        self._hurried = False  # ... and to stop at once (the grace period was cut short)
        if self.stats.latency is not None:
            self.stats.count_latency()
        self.stats.source = _Totals(self)

    # -- what the server and signal handlers call ------------------------------------

    def reload(self) -> None:
        """Replace every worker, one at a time (SIGHUP). Signal-safe."""
        self._reload = True
        self.wake()

    def resize(self, change: int) -> None:
        """One worker more (+1, SIGTTIN) or fewer (-1, SIGTTOU). Signal-safe."""
        self._resize += change
        self.wake()

    def worker_stats(self) -> dict[int, Stats]:
        """The latest report of each live worker, by its index."""
        # a roll's new worker shares its index with the one it replaces: the new one is shown
        ordered = sorted(self.workers.values(), key=lambda w: (w.index, not w.retiring))
        return {w.index: w.stats for w in ordered}

    # -- the master's loop -----------------------------------------------------------

    def run(self) -> None:
        restore = self._install_signals()
        selector = self._selector
        selector.register(self.wake_fileno, selectors.EVENT_READ, None)
        try:
            for index in range(self.target):
                self._spawn(index)
            while self.workers or not self.stopping:
                if self.failure is not None and not self.stopping:
                    self.stop(self.limits.grace)
                now = time.monotonic()
                for key, _ in selector.select(self._timeout(now)):
                    if key.data is None:
                        self.drain_wake()
                    else:
                        kind, worker = key.data
                        if kind == "channel":
                            self._read_channel(worker)
                        else:
                            self._reap(worker)
                if not self.workers and self.stopping:
                    break
                self._poll_children()
                self._act(time.monotonic())
        except BaseException:
            self._kill_all(signal.SIGKILL)  # a forced shutdown (second Ctrl-C) or a failure
            raise
        finally:
            for worker in list(self.workers.values()):
                self._wait_and_forget(worker)
            selector.close()
            for signum, previous in restore.items():
                signal.signal(signum, previous)
        if self.failure is not None:
            raise SocketkitError(self.failure)

    def _timeout(self, now: float) -> float:
        due = [now + 0.5]  # workers without pidfds are polled this often
        due += self._respawn_at.values()
        due += [w.last_beat + self.worker_timeout for w in self.workers.values() if not w.killed]
        if self.stopping:
            due.append(self.deadline + _KILL_MARGIN)
        return max(0.0, min(due) - now)

    def _act(self, now: float) -> None:
        """Everything the loop does after reading its events."""
        if self.stopping:
            if not self._terminated:
                self._terminated = True
                self._respawn_at.clear()
                self._kill_all(signal.SIGTERM)
            elif now >= self.deadline + _KILL_MARGIN:
                left = [w for w in self.workers.values() if not w.killed]
                if left:
                    log.warning("grace period over: killing %d worker(s) still running", len(left))
                    self._kill_all(signal.SIGKILL)
            elif self.deadline <= now and not self._hurried:  # the grace period was cut short
                self._hurried = True
                self._kill_all(signal.SIGQUIT)
            return
        for index, when in list(self._respawn_at.items()):
            if when <= now:
                del self._respawn_at[index]
                self._spawn(index)
        self._check_heartbeats(now)
        if self._reload:
            self._reload = False
            self._begin_roll()
        self._step_roll()
        if self._resize:
            change, self._resize = self._resize, 0
            self._apply_resize(change)

    # -- workers: start, hear, reap ------------------------------------------------------

    def _spawn(self, index: int) -> _Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _CHANNEL_BUFFER)
        master_only = [w.channel.fileno() for w in self.workers.values()]
        master_only += [ours.fileno(), *self.own_descriptors(), self._selector.fileno()]
        master_only += [w.pidfd for w in self.workers.values() if w.pidfd is not None]
        plan = WorkerPlan(
            index=index,
            listeners=self.listeners,
            plan=self.plan(),
            channel=theirs,
            close_after_fork=master_only,
            timed=self.stats.latency is not None,
        )
        # Signals wait until the child has its own handlers (the master's must not run there).
        plan.signal_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _WORKER_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                run_worker(plan)  # never returns
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, plan.signal_mask)
        theirs.close()
        now = time.monotonic()
        worker = _Worker(index=index, pid=pid, channel=ours, born=now, last_beat=now)
        ours.setblocking(False)
        self.workers[pid] = worker
        self._selector.register(ours, selectors.EVENT_READ, ("channel", worker))
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            with contextlib.suppress(OSError):
                worker.pidfd = pidfd_open(pid)
                self._selector.register(worker.pidfd, selectors.EVENT_READ, ("exit", worker))
        log.info("started worker %d (pid %d)", index, pid)
        return worker

    def _read_channel(self, worker: _Worker) -> None:
        while True:
            try:
                data = worker.channel.recv(_CHANNEL_BUFFER)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:  # the worker closed its end: it is exiting; its pidfd says when
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(worker.channel)
                return
            try:
                message = json.loads(data)
            except ValueError:
                log.error("worker %d sent something that is not JSON; ignored", worker.index)
                continue
            if message.get("ready"):
                worker.ready = True
                self._deaths = 0
                log.info("worker %d (pid %d) ready", worker.index, worker.pid)
            report = message.get("beat") or message.get("final")
            if report is not None:
                worker.last_beat = time.monotonic()
                worker.stats = stats_from_dict(report["stats"])
                worker.latency = {
                    url: (list(c), float(s)) for url, (c, s) in report.get("latency", {}).items()
                }

    def _poll_children(self) -> None:
        """Workers without a pidfd are reaped here (WNOHANG), each time round the loop."""
        for worker in [w for w in self.workers.values() if w.pidfd is None]:
            try:
                pid, status = os.waitpid(worker.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status = worker.pid, 0
            if pid:
                self._reap(worker, status)

    def _reap(self, worker: _Worker, status: int | None = None) -> None:
        if status is None:
            try:
                _, status = os.waitpid(worker.pid, 0)
            except ChildProcessError:
                status = 0
        self._read_channel(worker)  # its last words (the final report) are still there
        rolled = self._replacement is not None and self._replacement[0] is worker
        self._forget(worker)
        code = os.waitstatus_to_exitcode(status)
        lived = time.monotonic() - worker.born
        if self.stopping or worker.retiring:
            log.info("worker %d (pid %d) stopped", worker.index, worker.pid)
            return
        if rolled and not worker.ready:  # the new code does not boot: keep the old workers
            log.error(
                "SIGHUP: the new worker %d (pid %d) exited with code %d before serving; "
                "keeping the running workers",
                worker.index,
                worker.pid,
                code,
            )
            self._rolling.clear()
            return
        if code == BOOT_FAILED and not worker.ready:
            self.failure = (
                f"worker {worker.index} (pid {worker.pid}) failed to boot (its error is above); "
                "stopping: every worker would fail the same way"
            )
            log.critical("%s", self.failure)
            return
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        self._deaths = self._deaths + 1 if lived < _YOUNG else 0
        pause = 0.0 if not self._deaths else min(_MAX_BACKOFF, 0.1 * 2 ** (self._deaths - 1))
        log.warning(
            "worker %d (pid %d) %s after %.1fs; starting another%s",
            worker.index,
            worker.pid,
            how,
            lived,
            f" in {pause:.1f}s" if pause else "",
        )
        if worker.index < self.target:
            self._respawn_at[worker.index] = time.monotonic() + pause

    def _forget(self, worker: _Worker) -> None:
        """The worker is gone: keep its last report (nothing open any more), release its
        descriptors."""
        if self.workers.pop(worker.pid, None) is None:
            return
        closed = {
            url: dataclasses.replace(each, connections_open=0) for url, each in worker.stats.listeners.items()
        }
        self.retired_stats = sum_stats(
            [self.retired_stats, dataclasses.replace(worker.stats, connections_open=0, listeners=closed)]
        )
        for url, (counts, seconds) in worker.latency.items():
            kept_counts, kept_seconds = self.retired_latency.get(url, ([0] * len(counts), 0.0))
            self.retired_latency[url] = (
                [a + b for a, b in zip(kept_counts, counts, strict=True)],
                kept_seconds + seconds,
            )
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(worker.channel)
        worker.channel.close()
        if worker.pidfd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(worker.pidfd)
            os.close(worker.pidfd)
            worker.pidfd = None
        if self._replacement is not None and worker in self._replacement:
            self._replacement = None

    def _wait_and_forget(self, worker: _Worker) -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(worker.pid, 0)
        self._read_channel(worker)
        self._forget(worker)

    def _kill_all(self, signum: int) -> None:
        for worker in list(self.workers.values()):
            self._signal(worker, signum)

    def _signal(self, worker: _Worker, signum: int) -> None:
        if signum == signal.SIGKILL:
            worker.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signum)

    def _check_heartbeats(self, now: float) -> None:
        for worker in list(self.workers.values()):
            if not worker.killed and now - worker.last_beat > self.worker_timeout:
                log.error(
                    "worker %d (pid %d) %s for %.0fs; killing it",
                    worker.index,
                    worker.pid,
                    "sent no heartbeat (stuck in a handler?)" if worker.ready else "did not get ready",
                    now - worker.last_beat,
                )
                self._signal(worker, signal.SIGKILL)

    # -- SIGHUP, SIGTTIN, SIGTTOU --------------------------------------------------------------

    def _begin_roll(self) -> None:
        self._rolling = sorted((w for w in self.workers.values() if not w.retiring), key=lambda w: w.index)
        log.info("SIGHUP: replacing %d worker(s) one at a time", len(self._rolling))

    def _step_roll(self) -> None:
        """Once the new worker of a roll is ready, retire the one it replaces and start the next."""
        if self._replacement is not None:
            new, old = self._replacement
            if not new.ready:
                return
            self._replacement = None
            if old.pid in self.workers:
                old.retiring = True
                self._signal(old, signal.SIGUSR1)
        while self._rolling:
            old = self._rolling.pop(0)
            if old.pid not in self.workers or old.retiring:
                continue  # it died meanwhile (and was restarted), or is leaving anyway
            self._replacement = (self._spawn(old.index), old)
            return

    def _apply_resize(self, change: int) -> None:
        if change > 0:
            for _ in range(change):
                index = self.target
                self.target += 1
                log.info("SIGTTIN: %d worker(s)", self.target)
                self._spawn(index)
            return
        for _ in range(-change):
            if self.target <= 1:
                log.warning("SIGTTOU: one worker is the fewest")
                return
            self.target -= 1
            self._respawn_at.pop(self.target, None)
            for worker in self.workers.values():
                if worker.index == self.target and not worker.retiring:
                    worker.retiring = True
                    self._signal(worker, signal.SIGUSR1)
            log.info("SIGTTOU: %d worker(s)", self.target)

    # -- signals of the master -------------------------------------------------------------

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def ttin(signum: int, frame: FrameType | None) -> None:
            self.resize(+1)

        def ttou(signum: int, frame: FrameType | None) -> None:
            self.resize(-1)

        return {
            signal.SIGTTIN: signal.signal(signal.SIGTTIN, ttin),
            signal.SIGTTOU: signal.signal(signal.SIGTTOU, ttou),
        }
