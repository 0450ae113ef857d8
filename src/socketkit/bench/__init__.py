"""The load generator behind ``socketkit bench``.

Why its own event loop, not socketkit's Client: a load generator must keep
hundreds of connections busy from one core with as little overhead per request
as possible, measure each request's latency, and in open-loop mode send on a
schedule whatever the server does. One ``selectors`` loop per process drives
all of that process's connections; ``-p`` runs several processes and merges
their HDR histograms (the ``hdrhistogram`` package, imported when a benchmark
runs, so the library core stays standard-library only).
"""

from .config import MODES, BenchConfig
from .report import BenchResult, run_bench

__all__ = ["MODES", "BenchConfig", "BenchResult", "run_bench"]
