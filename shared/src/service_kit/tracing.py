"""OpenTelemetry setup: off unless the standard OTEL_* variables turn it on.

Tracing is enabled when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-specific
endpoint) is set and ``OTEL_SDK_DISABLED`` is not ``true``; the exporter reads
the rest of its configuration from the standard variables itself.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)
_configured = False


def tracing_requested() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def setup_tracing(service_name: str) -> bool:
    """Installs a tracer provider with an OTLP/HTTP exporter; returns whether it did."""
    global _configured
    if _configured or not tracing_requested():
        return _configured
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _configured = True
    log.info("tracing enabled", extra={"otel_service": service_name})
    return True
