"""What a benchmark run does: validated once, before any connection is made."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..endpoints import Endpoint, parse

__all__ = ["MODES", "BenchConfig"]

MODES = ("request", "http", "connect", "ws")


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark run.

    Attributes:
        url: the server (``tcp://`` or ``unix://``).
        mode: ``request`` (request/reply over ``codec``, keep-alive), ``http``
            (GET over keep-alive), ``connect`` (a new connection per request;
            with ``codec="http"``, GET with ``Connection: close``), ``ws`` (WebSocket
            text messages of ``size`` bytes, keep-alive, after the upgrade of ``path``).
        connections: concurrent connections, split across ``processes``.
        duration: seconds to run; also the cap when ``requests`` is given.
        requests: stop after this many replies (None: run for ``duration``).
        size: payload bytes per request (request and connect modes).
        codec: the framing for request and connect modes.
        rate: requests per second in total, open loop (None: closed loop,
            each connection sends when its previous reply arrived).
        processes: worker processes, to use more than one core.
        timeout: seconds a request may take before it counts as an error.
        path: the HTTP path requested.
        tls: speak TLS (a ``tls://`` URL does too): a full handshake on each new
            connection, resuming the session of an earlier one where the server
            allows it, as browsers and HTTPS clients do.
        tls_ca: a PEM file of CA certificates to trust instead of the system's.
        insecure: with TLS, verify nothing (a self-signed test server).
        deflate: in ws mode, messages compressed (permessage-deflate).
    """

    url: str
    mode: str = "request"
    connections: int = 10
    duration: float = 10.0
    requests: int | None = None
    size: int = 64
    codec: str = "lines"
    rate: float | None = None
    processes: int = 1
    timeout: float = 5.0
    path: str = "/"
    tls: bool = False
    tls_ca: str | None = None
    insecure: bool = False
    deflate: bool = False

    def __post_init__(self) -> None:
        endpoint = self.endpoint  # raises ValueError for a bad URL
        if not endpoint.is_stream:
            raise ValueError(f"bench drives connections; {self.url} is datagram-based")
        if not self.uses_tls and (self.tls_ca or self.insecure):
            raise ValueError("--tls-ca and --insecure need --tls or a tls:// URL")
        if self.tls_ca and self.insecure:
            raise ValueError("--tls-ca and --insecure exclude each other")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.deflate and self.mode != "ws":
            raise ValueError("--deflate is WebSocket's: use a ws:// URL or --mode ws")
        if self.connections < 1 or self.processes < 1:
            raise ValueError("connections and processes must be at least 1")
        if self.processes > self.connections:
            raise ValueError(f"{self.processes} processes need at least as many connections")
        if not 0 < self.duration <= 3600:
            raise ValueError("duration must be between 0 and 3600 seconds")
        if self.requests is not None and self.requests < 1:
            raise ValueError("requests must be at least 1")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be a positive number of requests per second")
        if self.size < 1:
            raise ValueError("size must be at least 1 byte")
        if not 0 < self.timeout <= 600:
            raise ValueError("timeout must be between 0 and 600 seconds")

    @property
    def endpoint(self) -> Endpoint:
        return parse(self.url)

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.endpoint.is_tls

    def share(self, index: int) -> BenchConfig:
        """The part of this run that worker ``index`` of ``processes`` does."""

        def part(total: int) -> int:
            return total // self.processes + (1 if index < total % self.processes else 0)

        return replace(
            self,
            connections=part(self.connections),
            requests=None if self.requests is None else max(1, part(self.requests)),
            rate=None if self.rate is None else self.rate / self.processes,
            processes=1,
        )
