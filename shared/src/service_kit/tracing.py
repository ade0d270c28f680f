"""OpenTelemetry traces: off unless the standard OTEL_* variables turn them on.

Tracing is enabled when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-specific
endpoint) is set and ``OTEL_SDK_DISABLED`` is not ``true``; the exporter and the
batch processor read the rest of their configuration (headers, timeouts,
``OTEL_BSP_SCHEDULE_DELAY``...) from the standard variables themselves.

When it is on, :func:`setup_tracing` installs, once per process and the same
way for every service, the tracer provider and the instrumentation of the
libraries every service shares: SQLAlchemy engines, Redis (``redis.asyncio``)
and ``httpx`` clients (which then send ``traceparent`` to the service they
call). HTTP server spans come from :class:`TracingMiddleware`, which the kit's
app (and the gateway) add only when :func:`tracing_enabled`. The broker is
traced by the kit itself: the outbox stores the writer's trace context with
each row, the relay publishes under a PRODUCER span that continues it, and the
consumer's span is that span's child (docs/adr/0021-tracing.md).

When it is off nothing is installed at all: no library function is wrapped and
no middleware is added, so a request pays nothing for tracing.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import Span, TracerProvider
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service_kit.metrics import route_template

log = logging.getLogger(__name__)
_configured = False
_instrumented = False

# Polled every few seconds by Kubernetes, Prometheus and (the revocation feed)
# every API process: a trace each would drown the traces of real requests. What
# they do (a readiness check's SQL, the feed's query) is not traced either.
UNTRACED_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/internal/revocations"})


TRACE_HEADERS = ("traceparent", "tracestate")


def trace_headers() -> dict[str, str]:
    """W3C trace context of the current span (empty when tracing is off)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    # Only the trace context: the default propagators also write ``baggage``,
    # which a caller could fill and we would then forward to every service.
    return {k: v for k, v in carrier.items() if k in TRACE_HEADERS}


def tracing_requested() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracing_enabled() -> bool:
    """Whether this process instruments anything (false unless the OTEL_* variables ask)."""
    return _instrumented


def setup_tracing(service_name: str) -> bool:
    """Installs the OTLP/HTTP tracer provider and the libraries' instrumentation once;
    returns whether tracing is on."""
    global _configured
    if _configured or not tracing_requested():
        return _configured
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = SdkTracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    instrument_libraries(provider)
    _configured = True
    log.info("tracing enabled", extra={"otel_service": service_name})
    return True


def instrument_libraries(provider: TracerProvider) -> None:
    """Wraps SQLAlchemy engine creation, Redis commands and httpx transports (idempotent).

    Engines must be created after this: the instrumentation wraps
    ``create_async_engine``, which the kit's ``db.create_engine`` looks up at call time.
    """
    global _instrumented
    if _instrumented:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    # The instrumentation declares SQLAlchemy < 2.1 and would refuse our 2.1; the
    # engine events it hooks are unchanged, and test_kit_tracing proves the spans.
    SQLAlchemyInstrumentor().instrument(tracer_provider=provider, skip_dep_check=True)
    RedisInstrumentor().instrument(tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(
        tracer_provider=provider,
        request_hook=_drop_query_of_client_span,
        async_request_hook=_async_drop_query_of_client_span,
    )
    _instrumented = True


def uninstrument_libraries() -> None:
    """Undoes :func:`instrument_libraries` (for tests that trace into memory)."""
    global _instrumented
    if not _instrumented:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor().uninstrument()
    RedisInstrumentor().uninstrument()
    HTTPXClientInstrumentor().uninstrument()
    _instrumented = False


# Query strings hold what a span must not: a user search's ``q=`` is often an email
# address, and a trace backend keeps spans longer, and shows them to more people,
# than our logs (which never hold a query string). Paths stay: ids are not secrets.
_URL_ATTRIBUTES = ("http.url", "http.target", "url.full")
_QUERY_ATTRIBUTES = ("url.query",)
QUERY_REDACTED = "REDACTED"


def drop_query_strings(span: Span) -> None:
    """Cuts the query string off every URL attribute of ``span`` (the instrumentations
    set them before their hooks run; an attribute cannot be removed, only replaced)."""
    if not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    for key in _URL_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and "?" in value:
            span.set_attribute(key, value.split("?", 1)[0])
    for key in _QUERY_ATTRIBUTES:
        if attributes.get(key):
            span.set_attribute(key, QUERY_REDACTED)


def _drop_query_of_server_span(span: Span, scope: dict[str, Any]) -> None:
    drop_query_strings(span)


def _drop_query_of_client_span(span: Span, request: Any) -> None:
    drop_query_strings(span)


async def _async_drop_query_of_client_span(span: Span, request: Any) -> None:
    drop_query_strings(span)


def _method_only(scope: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # The route is not known before routing: the span is renamed when it is
    # (_NamedByRoute); a raw path in the name would make one name per id.
    return str(scope.get("method") or "HTTP"), {}


class _NamedByRoute:
    """Names the server span ``METHOD /route/{template}`` once the router has matched.

    Done when the answer starts, not after the app returns: the ASGI middleware
    ends the span with the last body chunk, and an ended span takes no new name.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        span: Span = trace.get_current_span()

        async def send_naming(message: Message) -> None:
            if message["type"] == "http.response.start" and span.is_recording():
                route = route_template(scope)
                span.update_name(f"{scope['method']} {route}")
                span.set_attribute("http.route", route)
            await send(message)

        await self.app(scope, receive, send_naming)


class TracingMiddleware:
    """A SERVER span per HTTP request (parent: the caller's ``traceparent``), except for
    :data:`UNTRACED_PATHS`. Added by the kit only when tracing is on."""

    def __init__(self, app: ASGIApp) -> None:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        self.untraced = app
        self.traced = OpenTelemetryMiddleware(
            _NamedByRoute(app),
            default_span_details=_method_only,
            # One span per request, not one more per body chunk read or written.
            exclude_spans=["receive", "send"],
            server_request_hook=_drop_query_of_server_span,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in UNTRACED_PATHS:
            with suppress_instrumentation():
                await self.untraced(scope, receive, send)
            return
        await self.traced(scope, receive, send)


def traced(app: ASGIApp) -> ASGIApp:
    """``app`` under :class:`TracingMiddleware` when tracing is on, else ``app`` itself."""
    return TracingMiddleware(app) if tracing_enabled() else app
