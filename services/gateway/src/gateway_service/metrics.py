"""The gateway's own metrics, and the separate port that serves them.

HTTP RED metrics come from the kit's middleware, labelled by route template
(the routing table's ``Route.path``), never by raw path. The series here are
labelled by upstream name only, so their number is fixed. Children are bound
once, so the request path pays no label lookup.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    start_http_server,
)
from service_kit.errors import ErrorCode

if TYPE_CHECKING:
    from gateway_service.proxy.pool import ConnectionPool

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
UPSTREAM_CONNECTIONS = Gauge(
    "gateway_upstream_connections",
    "Pooled connections to an upstream by state (idle, in_use); read at scrape time, "
    "so only exported with GATEWAY_WORKERS=1.",
    ["upstream", "state"],
)
BODY_TOO_LARGE = Counter(
    "gateway_body_too_large_total", "Requests refused with 413 by the gateway."
)
AUTH_REJECTIONS = Counter(
    "gateway_auth_rejections_total", "Requests refused with 401 by the gateway.", ["code"]
)
for _code in (ErrorCode.AUTH_TOKEN_INVALID, ErrorCode.AUTH_TOKEN_EXPIRED):
    AUTH_REJECTIONS.labels(_code.value)  # exported at 0 before the first refusal
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

    def watch_pools(self, pools: Mapping[str, ConnectionPool]) -> None:
        """Pool occupancy, computed when Prometheus scrapes (nothing on the request path)."""
        for name, pool in pools.items():
            UPSTREAM_CONNECTIONS.labels(name, "idle").set_function(partial(_idle, pool))
            UPSTREAM_CONNECTIONS.labels(name, "in_use").set_function(partial(_in_use, pool))


def _idle(pool: ConnectionPool) -> float:
    return pool.idle


def _in_use(pool: ConnectionPool) -> float:
    return pool.in_use


class MetricsServer:
    """``/metrics`` on its own port, in a thread: never reachable on the public port,
    and still answering when the event loop is saturated (when it matters most)."""

    def __init__(self, host: str, port: int, registry: CollectorRegistry = REGISTRY) -> None:
        self._host = host
        self._port = port
        self._registry = registry
        self._server: WSGIServer | None = None

    def start(self) -> None:
        if not self._port:
            return
        self._server, _ = start_http_server(self._port, addr=self._host, registry=self._registry)
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
