"""The gateway's own metrics, and the separate port that serves them.

HTTP RED metrics come from the kit's middleware, labelled by route template
(the routing table's ``Route.path``), never by raw path. The series here are
labelled by upstream name only, so their number is fixed. Children are bound
once, so the request path pays no label lookup.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server

log = logging.getLogger(__name__)

UPSTREAM_LATENCY = Histogram(
    "gateway_upstream_response_seconds",
    "Time from sending a request upstream to its response headers.",
    ["upstream"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPSTREAM_FAILURES = Counter(
    "gateway_upstream_failures_total",
    "Requests answered 503 because the upstream was unreachable or too slow.",
    ["upstream", "reason"],
)
BODY_TOO_LARGE = Counter(
    "gateway_body_too_large_total", "Requests refused with 413 by the gateway."
)
AUTH_REJECTIONS = Counter(
    "gateway_auth_rejections_total", "Requests refused with 401 by the gateway.", ["code"]
)
RATE_LIMITED = Counter(
    "gateway_rate_limited_total", "Requests refused with 429 by the per-user limit."
)
RATE_LIMIT_STORE_ERRORS = Counter(
    "gateway_rate_limit_store_errors_total",
    "Failed exchanges with Redis for rate limiting (the limit then fails open).",
)


@dataclass(frozen=True, slots=True)
class UpstreamSeries:
    latency: Histogram
    unavailable: Counter
    timeout: Counter


class UpstreamMetrics:
    def __init__(self, upstreams: tuple[str, ...]) -> None:
        self._series = {
            name: UpstreamSeries(
                UPSTREAM_LATENCY.labels(name),
                UPSTREAM_FAILURES.labels(name, "unavailable"),
                UPSTREAM_FAILURES.labels(name, "timeout"),
            )
            for name in upstreams
        }
        self.body_too_large = BODY_TOO_LARGE

    def for_upstream(self, name: str) -> UpstreamSeries:
        return self._series[name]


class MetricsServer:
    """``/metrics`` on its own port, in a thread: never reachable on the public port,
    and still answering when the event loop is saturated (when it matters most)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry = REGISTRY) -> None:
        self._host = host
        self._port = port
        self._registry = registry
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self._port:
            return
        self._server, self._thread = start_http_server(
            self._port, addr=self._host, registry=self._registry
        )
        log.info("metrics listening", extra={"host": self._host, "port": self._port})

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def multiprocess_registry() -> CollectorRegistry:
    """A registry that merges the series every worker writes to PROMETHEUS_MULTIPROC_DIR."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry
