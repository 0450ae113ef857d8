"""Prometheus metrics: a server's stats in the exposition format, served over HTTP.

Why prometheus-client: the text format has escaping and type rules that are
easy to get subtly wrong; the client library writes it (an optional
``metrics`` extra, imported only when metrics are asked for). The numbers are
read from the server's stats when Prometheus scrapes (a custom collector), so
the hot path counts nothing new except, when metrics are on, the handler
latency per message. The endpoint is a second socketkit server: the HTTP codec
and the same engine as the server it reports on.

Metrics (labels: ``engine`` and ``listener``, the URL of the endpoint; errors
also ``kind``; one series per listener, so ``sum()`` gives the server):
``socketkit_connections_open``, ``socketkit_connections_total``,
``socketkit_connections_rejected_total``, ``socketkit_received_bytes_total``,
``socketkit_sent_bytes_total``, ``socketkit_received_messages_total``,
``socketkit_sent_messages_total``, ``socketkit_errors_total``, and the
histogram ``socketkit_handler_seconds``. With worker processes (prefork) the
numbers are the workers' summed, and ``socketkit_worker_connections_open``,
``socketkit_worker_connections_total``, ``socketkit_worker_received_messages_total``
and ``socketkit_worker_sent_messages_total`` have a ``worker`` label (its index)
as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from .codecs import HttpResponse, Request
from .connection import Connection
from .stats import LatencyHistogram, Stats


class Server(Protocol):
    """What the metrics need of a server (socketkit.Server has it)."""

    @property
    def stats(self) -> Stats: ...

    @property
    def engine_name(self) -> str: ...

    @property
    def urls(self) -> list[str]: ...

    @property
    def latency(self) -> LatencyHistogram | None: ...

    @property
    def worker_stats(self) -> dict[int, Stats]: ...

    @property
    def latency_by_listener(self) -> dict[str, LatencyHistogram]: ...


__all__ = ["MetricsEndpoint", "exposition"]


def _prometheus() -> Any:
    try:
        import prometheus_client  # noqa: PLC0415 - optional dependency, imported on use
        import prometheus_client.core  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError("metrics need prometheus-client: pip install 'socketkit[metrics]'") from exc
    return prometheus_client


class _StatsCollector:
    """A prometheus-client collector that reads the server's stats at each scrape."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def collect(self) -> Iterator[Any]:
        core = _prometheus().core
        server = self.server
        stats = server.stats
        engine = server.engine_name
        # every listener has its series, those that saw nothing yet too
        listeners = {url: stats.listeners.get(url, Stats()) for url in server.urls}
        listeners.update(stats.listeners)
        labels = ["engine", "listener"]

        def family(kind: str, name: str, text: str, field: str) -> Any:
            """A metric of one Stats field, a series per listener."""
            metric = getattr(core, f"{kind}MetricFamily")(name, text, labels=labels)
            for url, counted in listeners.items():
                metric.add_metric([engine, url], getattr(counted, field))
            return metric

        yield family("Gauge", "socketkit_connections_open", "Connections open now.", "connections_open")
        yield family("Counter", "socketkit_connections", "Connections accepted.", "connections_total")
        yield family(
            "Counter",
            "socketkit_connections_rejected",
            "Connections refused by a limit.",
            "connections_rejected",
        )
        yield family("Counter", "socketkit_received_bytes", "Bytes received.", "bytes_in")
        yield family("Counter", "socketkit_sent_bytes", "Bytes sent.", "bytes_out")
        yield family("Counter", "socketkit_received_messages", "Messages decoded.", "messages_in")
        yield family("Counter", "socketkit_sent_messages", "Messages sent.", "messages_out")
        errors = core.CounterMetricFamily(
            "socketkit_errors", "Connections ended by an error, by kind.", labels=[*labels, "kind"]
        )
        for url, counted in listeners.items():
            for kind, count in sorted(counted.errors.items()):
                errors.add_metric([engine, url, kind], count)
        yield errors
        yield from _per_worker(core, engine, server.worker_stats, list(listeners))
        latencies = server.latency_by_listener
        if not latencies and server.latency is None:
            return
        histogram = core.HistogramMetricFamily(
            "socketkit_handler_seconds", "Time the handler took per message.", labels=labels
        )
        for url in listeners:
            latency = latencies.get(url) or LatencyHistogram()
            counts, total = latency.snapshot()
            cumulative, buckets = 0, []
            for bound, count in zip([*latency.buckets, float("inf")], counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            histogram.add_metric([engine, url], buckets, total)
        yield histogram


def _per_worker(core: Any, engine: str, workers: dict[int, Stats], urls: list[str]) -> Iterator[Any]:
    """With worker processes: each one's connections and messages (labels engine, listener, worker)."""
    if not workers:
        return
    labels = ["engine", "listener", "worker"]
    for kind, name, text, field in (
        (
            "Gauge",
            "socketkit_worker_connections_open",
            "Connections open now, per worker.",
            "connections_open",
        ),
        ("Counter", "socketkit_worker_connections", "Connections accepted, per worker.", "connections_total"),
        ("Counter", "socketkit_worker_received_messages", "Messages decoded, per worker.", "messages_in"),
        ("Counter", "socketkit_worker_sent_messages", "Messages sent, per worker.", "messages_out"),
    ):
        metric = getattr(core, f"{kind}MetricFamily")(name, text, labels=labels)
        for index, counted in sorted(workers.items()):
            for url in urls:
                metric.add_metric(
                    [engine, url, str(index)], getattr(counted.listeners.get(url, Stats()), field)
                )
        yield metric


def exposition(server: Server) -> tuple[bytes, str]:
    """The server's metrics in the Prometheus text format, and its content type."""
    client = _prometheus()
    registry = client.CollectorRegistry(auto_describe=False)
    registry.register(_StatsCollector(server))
    return client.generate_latest(registry), client.CONTENT_TYPE_LATEST


class MetricsEndpoint:
    """The HTTP handler of the metrics server: ``GET /metrics``; anything else is a 404."""

    def __init__(self, server: Server) -> None:
        _prometheus()  # missing: say so when the server is made, not at the first scrape
        self.server = server

    def __call__(self, request: Request, conn: Connection) -> HttpResponse:
        if request.method not in (b"GET", b"HEAD") or request.target.split(b"?", 1)[0] != b"/metrics":
            return HttpResponse(404, b"metrics are at /metrics\n", [("Content-Type", "text/plain")])
        body, content_type = exposition(self.server)
        return HttpResponse(200, body, [("Content-Type", content_type)], head_only=request.method == b"HEAD")
