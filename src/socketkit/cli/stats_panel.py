"""The live ``--stats`` panel: connections, requests/s, bytes/s and errors, about once a
second; with several endpoints, connections and requests/s for each; with worker
processes, connections and requests for each."""

from __future__ import annotations

import threading
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ..server import Server
from ..stats import Stats

__all__ = ["StatsPanel"]


def _rate(value: float) -> str:
    for unit in ("", "K", "M", "G"):
        if abs(value) < 1000:
            return f"{value:,.1f}{unit}"
        value /= 1000
    return f"{value:,.1f}T"


class StatsPanel:
    """Redraws a table of ``server.stats`` until stopped."""

    def __init__(self, server: Server, console: Console) -> None:
        self.server = server
        self.console = console
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="socketkit-stats", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def render(self, now: Stats, before: Stats, seconds: float) -> Table:
        seconds = max(seconds, 1e-9)
        table = Table(title=f"socketkit {' '.join(self.server.urls)}", show_header=False, expand=False)
        table.add_column(style="bold")
        table.add_column(justify="right")
        table.add_row("connections open", f"{now.connections_open:,}")
        table.add_row("connections total", f"{now.connections_total:,}")
        table.add_row("rejected", f"{now.connections_rejected:,}")
        table.add_row("requests/s", _rate((now.messages_in - before.messages_in) / seconds))
        table.add_row("bytes/s in", _rate((now.bytes_in - before.bytes_in) / seconds))
        table.add_row("bytes/s out", _rate((now.bytes_out - before.bytes_out) / seconds))
        errors = ", ".join(f"{kind} {count}" for kind, count in sorted(now.errors.items())) or "none"
        table.add_row("errors", errors)
        if len(now.listeners) > 1:  # which endpoint the traffic comes to
            for url, counted in now.listeners.items():
                earlier = before.listeners.get(url, Stats())
                rate = _rate((counted.messages_in - earlier.messages_in) / seconds)
                table.add_row(url, f"{counted.connections_open:,} open, {rate} requests/s")
        for index, counted in self.server.worker_stats.items():  # worker processes, if any
            table.add_row(
                f"worker {index}", f"{counted.connections_open:,} open, {counted.messages_in:,} requests"
            )
        return table

    def _run(self) -> None:
        if not self.server.wait_started(30):  # the title shows the real, bound ports
            return
        before = self.server.stats
        then = time.monotonic()
        with Live(self.render(before, before, 1), console=self.console, refresh_per_second=2) as live:
            while not self._stop.wait(1.0):  # a display refresh interval, not synchronisation
                now = self.server.stats
                moment = time.monotonic()
                live.update(self.render(now, before, moment - then))
                before, then = now, moment
