"""``socketkit bench``: load a server and report throughput and latency percentiles."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..bench import MODES, BenchConfig, BenchResult, run_bench
from ..bench.runner import Progress
from ..codecs import CODECS
from ..websocket_client import websocket_target
from .common import Failure, target_url, tls_options, usage_errors


@click.command()
@click.argument("url", metavar="URL|HOST:PORT")
@click.option(
    "-c",
    "--connections",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Concurrent connections.",
)
@click.option(
    "-d",
    "--duration",
    type=click.FloatRange(min=0, min_open=True, max=3600),
    default=None,
    help="Seconds to run [default: 10; with -n, the cap: 300].",
)
@click.option(
    "-n", "--requests", type=click.IntRange(min=1), default=None, help="Stop after this many replies."
)
@click.option(
    "--size", type=click.IntRange(min=1), default=64, show_default=True, help="Payload bytes per request."
)
@click.option(
    "--codec",
    type=click.Choice(list(CODECS)),
    default="lines",
    show_default=True,
    help="Framing in request and connect modes (connect with http sends GETs).",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="request",
    show_default=True,
    help="request: request/reply over --codec; http: GET with keep-alive; connect: a new connection "
    "per request; ws: WebSocket text messages of --size bytes after the upgrade (a ws:// URL picks it).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Requests/s in total, open loop; latencies count from when each request was due.",
)
@click.option(
    "-p",
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes to spread the connections over, to use more cores.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=5.0,
    show_default=True,
    help="Seconds before an unanswered request counts as an error.",
)
@click.option("--path", default="/", show_default=True, help="The path GET asks for in http modes.")
@click.option(
    "--deflate",
    is_flag=True,
    help="ws mode: offer permessage-deflate and send every message compressed.",
)
@tls_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (iperf3-style).")
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE.png",
    help="Draw latency by percentile to FILE.png (needs socketkit[plot]).",
)
def bench(
    url: str,
    connections: int,
    duration: float | None,
    requests: int | None,
    size: int,
    codec: str,
    mode: str,
    rate: float | None,
    processes: int,
    timeout: float,
    path: str,
    use_tls: bool,
    tls_ca: str | None,
    insecure: bool,
    deflate: bool,
    as_json: bool,
    plot: Path | None,
) -> None:
    """Load URL and report requests/s, bytes/s, latency percentiles and errors.

    It stops by itself: after -d seconds, or -n replies (within a cap).
    """
    with usage_errors():
        if plot is not None and plot.suffix.lower() != ".png":
            raise ValueError("--plot writes a PNG: give a file name ending in .png")
        websocket = websocket_target(url)
        if websocket is not None:  # ws://host:port/path: the stream under it, the path upgraded
            if mode not in ("request", "ws"):
                raise ValueError(f"a ws:// URL is benchmarked in mode ws, not {mode}")
            url, mode, use_tls = websocket.stream_url, "ws", use_tls or websocket.stream_url.startswith("tls")
            path = websocket.path
        config = BenchConfig(
            url=target_url(url),
            mode=mode,
            connections=connections,
            duration=duration if duration is not None else (300.0 if requests else 10.0),
            requests=requests,
            size=size,
            codec=codec,
            rate=rate,
            processes=processes,
            timeout=timeout,
            path=path,
            tls=use_tls,
            tls_ca=tls_ca,
            insecure=insecure,
            deflate=deflate,
        )
    console = Console(stderr=True)
    try:
        if as_json or not console.is_terminal:
            result = run_bench(config)
        else:
            with Live(_progress_line(None, config), console=console, refresh_per_second=4) as live:
                result = run_bench(config, lambda p: live.update(_progress_line(p, config)))
    except (ValueError, ImportError) as exc:
        raise click.UsageError(str(exc)) from exc
    except RuntimeError as exc:
        raise Failure(str(exc)) from exc
    if plot is not None:
        _plot(result, plot)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        Console().print(_table(result))
    if result.requests == 0:
        raise Failure(f"no request completed ({_errors(result) or 'no reply within the run'})")


def _progress_line(progress: Progress | None, config: BenchConfig) -> Text:
    if progress is None:
        return Text(f"bench {config.url}: starting {config.connections} connection(s)")
    rate = progress.requests / progress.elapsed if progress.elapsed else 0.0
    limit = f"{config.requests:,} requests" if config.requests else f"{config.duration:g}s"
    return Text(
        f"bench {config.url} [{config.mode}]  {progress.elapsed:5.1f}s of {limit}  "
        f"{progress.requests:,} requests  {rate:,.0f} req/s  {progress.errors:,} errors"
    )


def _errors(result: BenchResult) -> str:
    return ", ".join(f"{kind}: {count:,}" for kind, count in sorted(result.errors.items()))


def _table(result: BenchResult) -> Table:
    config = result.config
    table = Table(
        title=f"socketkit bench {config.url} ({config.mode}, {config.connections} connections"
        + (f", {config.rate:g} req/s open loop" if config.rate else "")
        + ")"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("requests", f"{result.requests:,} in {result.elapsed:.2f}s")
    table.add_row("requests/s", f"{result.requests_per_second:,.1f}")
    table.add_row("bytes/s", f"{result.bytes_per_second:,.0f}")
    for label, value in result.latency_ms().items():
        table.add_row(f"latency {label}", f"{value:.3f} ms")
    if config.uses_tls:
        table.add_row("TLS handshakes", f"{result.handshakes:,} ({result.resumed:,} resumed)")
    table.add_row("errors", _errors(result) or "none")
    return table


def _plot(result: BenchResult, path: Path) -> None:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as exc:
        raise click.UsageError("--plot needs matplotlib: pip install 'socketkit[plot]'") from exc
    points = [(p, ms) for p, ms in result.percentile_curve() if p < 100.0]
    figure, axes = plt.subplots(figsize=(8, 4.5))
    if points:
        axes.plot([1 / (1 - p / 100) for p, _ in points], [ms for _, ms in points], marker=".")
    axes.set_xscale("log")
    ticks = [1, 2, 10, 100, 1000, 10000]
    axes.set_xticks(ticks, ["0%", "50%", "90%", "99%", "99.9%", "99.99%"])
    axes.set_xlabel("percentile")
    axes.set_ylabel("latency (ms)")
    config = result.config
    axes.set_title(
        f"{config.url} {config.mode}, {config.connections} conns: {result.requests_per_second:,.0f} req/s"
    )
    axes.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
