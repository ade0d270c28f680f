"""Prometheus metrics: RED for HTTP as pure ASGI middleware, and the /metrics app.

Paths are labelled by route template (``/exams/{exam_id}``), never the raw
path: raw paths put one time series per id into Prometheus and exhaust it.

The counter keeps the exact status (a dozen values: 401, 404, 409 and 429 mean
different things to an operator) while the latency histogram is labelled by
status class (``2xx``, ``4xx``, ``5xx``): each label value there costs a whole
set of buckets, and latency differs by class, not by which 4xx it was.
"""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests served, by route template and status.",
    ["service", "method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route template, method and status class (2xx, 4xx, 5xx).",
    ["service", "method", "route", "status_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_IN_FLIGHT = Gauge("http_requests_in_flight", "HTTP requests being served.", ["service"])
UNMATCHED_ROUTE = "<unmatched>"


def status_class(status: int) -> str:
    """``404`` -> ``"4xx"``; out-of-range codes keep their own leading digit."""
    return f"{status // 100}xx"


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return UNMATCHED_ROUTE


class PrometheusMiddleware:
    """Counts and times every HTTP request; ``/metrics`` itself is not counted."""

    def __init__(
        self, app: ASGIApp, service: str, skip_paths: frozenset[str] = frozenset()
    ) -> None:
        self.app = app
        self.service = service
        self.skip_paths = skip_paths | {"/metrics"}
        self.in_flight = HTTP_IN_FLIGHT.labels(service)
        # Label children bound once per (method, route[, status]): ``labels()`` costs
        # a lock and a tuple build per call. Bounded by the series Prometheus holds.
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._histograms: dict[tuple[str, str, int], Histogram] = {}

    def _record(self, method: str, route: str, status: int, seconds: float) -> None:
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = HTTP_REQUESTS.labels(self.service, method, route, str(status))
            self._counters[(method, route, status)] = counter
        counter.inc()
        klass = status // 100
        histogram = self._histograms.get((method, route, klass))
        if histogram is None:
            histogram = HTTP_DURATION.labels(self.service, method, route, status_class(status))
            self._histograms[(method, route, klass)] = histogram
        histogram.observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip_paths:
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.in_flight.inc()
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.in_flight.dec()
            self._record(
                scope["method"], route_template(scope), status, time.perf_counter() - started
            )


async def metrics_app(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI endpoint that serves the process registry in the text format."""
    body = generate_latest()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
