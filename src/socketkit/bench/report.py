"""Running a benchmark (in one or several processes) and reporting it.

The report is the same whatever the output: requests/s, bytes/s, latency at
p50/p90/p99/p99.9/max from the merged HDR histogram, and errors by kind;
``to_json()`` lays it out as iperf3 does (start, intervals, end).
"""

from __future__ import annotations

import dataclasses
import json
import selectors
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import BenchConfig
from .runner import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS, Progress, Runner, WorkerResult

__all__ = ["PERCENTILES", "BenchResult", "run_bench"]

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclass
class BenchResult:
    config: BenchConfig
    requests: int
    errors: dict[str, int]
    bytes_sent: int
    bytes_received: int
    elapsed: float
    histogram: Any  # hdrh.histogram.HdrHistogram, microseconds
    intervals: list[tuple[float, int, int]] = field(default_factory=list)
    started: float = 0.0  # wall-clock time the run began
    handshakes: int = 0  # TLS handshakes completed
    resumed: int = 0  # of which resumed an earlier session

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    @property
    def bytes_per_second(self) -> float:
        return (self.bytes_sent + self.bytes_received) / self.elapsed if self.elapsed else 0.0

    def latency_ms(self) -> dict[str, float]:
        """p50, p90, p99, p99.9 and max, in milliseconds (0 when nothing completed)."""
        if not self.requests:
            return {**{_label(p): 0.0 for p in PERCENTILES}, "max": 0.0}
        values = {_label(p): self.histogram.get_value_at_percentile(p) / 1000 for p in PERCENTILES}
        values["max"] = self.histogram.get_max_value() / 1000
        return values

    def to_json(self) -> dict[str, Any]:
        return {
            "start": {
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                "test": dataclasses.asdict(self.config),
            },
            "intervals": [
                {"end": end, "requests": requests, "bytes": moved} for end, requests, moved in self.intervals
            ],
            "end": {
                "seconds": round(self.elapsed, 3),
                "requests": self.requests,
                "requests_per_second": round(self.requests_per_second, 1),
                "bytes_sent": self.bytes_sent,
                "bytes_received": self.bytes_received,
                "bytes_per_second": round(self.bytes_per_second, 1),
                "latency_ms": {key: round(value, 3) for key, value in self.latency_ms().items()},
                "errors": self.errors,
                **(
                    {"tls": {"handshakes": self.handshakes, "resumed": self.resumed}}
                    if self.config.uses_tls
                    else {}
                ),
            },
        }

    def percentile_curve(self) -> list[tuple[float, float]]:
        """(percentile, latency ms) points for a latency-by-percentile plot."""
        points = []
        for item in self.histogram.get_percentile_iterator(5):
            points.append((item.percentile_level_iterated_to, item.value_iterated_to / 1000))
        return points


def _label(percentile: float) -> str:
    return f"p{percentile:g}"


def run_bench(config: BenchConfig, progress: Callable[[Progress], None] | None = None) -> BenchResult:
    """Run ``config``; ``progress`` is called about four times a second with totals so far.

    Raises:
        ValueError: the configuration cannot run (bad codec for the payload, ...).
        ImportError: hdrhistogram is missing (pip install 'socketkit[cli]').
    """
    started = time.time()
    results = [Runner(config, progress).run()] if config.processes == 1 else _run_workers(config, progress)
    return _merge(config, results, started)


def _run_workers(config: BenchConfig, progress: Callable[[Progress], None] | None) -> list[WorkerResult]:
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "socketkit.bench.worker", json.dumps(dataclasses.asdict(config.share(i)))],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(config.processes)
    ]
    latest: dict[int, Progress] = {}
    results: dict[int, WorkerResult] = {}
    selector = selectors.DefaultSelector()
    try:
        for index, worker in enumerate(workers):
            assert worker.stdout is not None
            selector.register(worker.stdout, selectors.EVENT_READ, index)
        while selector.get_map():  # until every worker's output has ended
            events = selector.select(config.duration + config.timeout + 30)
            if not events:
                raise RuntimeError("bench workers stopped reporting")
            for key, _ in events:
                index = key.data
                line = key.fileobj.readline()  # type: ignore[union-attr]
                if not line:
                    selector.unregister(key.fileobj)
                    continue
                message = json.loads(line)
                if "progress" in message:
                    latest[index] = Progress(**message["progress"])
                    if progress is not None:
                        progress(
                            Progress(
                                max(p.elapsed for p in latest.values()),
                                sum(p.requests for p in latest.values()),
                                sum(p.errors for p in latest.values()),
                                sum(p.bytes for p in latest.values()),
                            )
                        )
                else:
                    fields = message["result"]
                    fields["intervals"] = [tuple(i) for i in fields["intervals"]]
                    results[index] = WorkerResult(**fields)
    finally:
        selector.close()
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait()
    missing = [i for i in range(len(workers)) if i not in results]
    if missing:
        raise RuntimeError(f"bench worker(s) {missing} failed; run with -p 1 to see why")
    return [results[i] for i in range(len(workers))]


def _merge(config: BenchConfig, results: list[WorkerResult], started: float) -> BenchResult:
    from hdrh.histogram import HdrHistogram  # noqa: PLC0415

    histogram = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
    errors: Counter[str] = Counter()
    intervals: dict[int, list[float]] = {}
    for result in results:
        histogram.decode_and_add(result.histogram.encode("ascii"))
        errors.update(result.errors)
        for n, (end, requests, moved) in enumerate(result.intervals):
            slot = intervals.setdefault(n, [end, 0, 0])
            slot[1] += requests
            slot[2] += moved
    return BenchResult(
        config=config,
        requests=sum(r.requests for r in results),
        errors=dict(errors),
        bytes_sent=sum(r.bytes_sent for r in results),
        bytes_received=sum(r.bytes_received for r in results),
        elapsed=max(r.elapsed for r in results),
        histogram=histogram,
        intervals=[(end, int(req), int(moved)) for end, req, moved in intervals.values()],
        started=started,
        handshakes=sum(r.handshakes for r in results),
        resumed=sum(r.resumed for r in results),
    )
