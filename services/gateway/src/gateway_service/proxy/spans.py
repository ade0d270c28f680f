"""The CLIENT span of one upstream exchange, when tracing is on (ADR 0021).

The gateway's upstream client is its own (ADR 0008), so no library
instrumentation sees it: :func:`upstream_span` opens the span and gives the
headers the upstream must get, with this span's context in place of any the
client sent. The callers check :func:`~service_kit.tracing.tracing_enabled`
first, so with tracing off nothing here runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from service_kit.tracing import trace_headers

from gateway_service.proxy.errors import UpstreamError
from gateway_service.proxy.pool import Origin
from gateway_service.routing import Route

Headers = list[tuple[bytes, bytes]]

_TRACE_CONTEXT = frozenset({b"traceparent", b"tracestate"})

tracer = trace.get_tracer("gateway_service.proxy")


@contextmanager
def upstream_span(method: str, route: Route, origin: Origin, headers: Headers) -> Iterator[Headers]:
    """A CLIENT span around the exchange; yields ``headers`` carrying its context."""
    with tracer.start_as_current_span(
        f"{method} {route.path}",
        kind=trace.SpanKind.CLIENT,
        attributes={
            "http.request.method": method,
            "http.route": route.path,
            "server.address": origin.host,
            "server.port": origin.port,
            "peer.service": route.upstream,
        },
    ):
        # The client's own trace context (the server span's parent) is replaced,
        # so the upstream's span is a child of this exchange, not a sibling of it.
        traced = [h for h in headers if h[0] not in _TRACE_CONTEXT]
        traced += [(k.encode(), v.encode()) for k, v in trace_headers().items()]
        yield traced


def record_answer(status: int) -> None:
    span = trace.get_current_span()
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(trace.StatusCode.ERROR)


def record_failure(exc: UpstreamError) -> None:
    span = trace.get_current_span()
    span.record_exception(exc)
    span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
