"""Tracing into memory, for tests of what the kit and the services trace.

:func:`recorded_spans` turns tracing on for a block as the OTEL_* variables
would (the libraries instrumented, :func:`~service_kit.tracing.tracing_enabled`
true), but the spans go to an in-memory exporter instead of over OTLP.

OpenTelemetry lets a process set its global tracer provider once, and the
kit's tracers (the relay's, the consumer's, the gateway's) hold on to it, so
one provider serves the whole test session; each block gets a fresh exporter.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service_kit.tracing import instrument_libraries, uninstrument_libraries


class _ToCurrentExporter(SpanProcessor):
    """Exports each ended span to the exporter of the block in progress, if any."""

    def __init__(self) -> None:
        self.exporter: InMemorySpanExporter | None = None

    def on_end(self, span: ReadableSpan) -> None:
        exporter = self.exporter
        if exporter is not None:
            exporter.export((span,))


_processor = _ToCurrentExporter()


def _session_provider() -> TracerProvider:
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        if getattr(current, "_kit_test_processor", False) is not True:
            current.add_span_processor(_processor)
            current._kit_test_processor = True  # type: ignore[attr-defined]
        return current
    provider = TracerProvider(resource=Resource.create({"service.name": "kit-test"}))
    provider.add_span_processor(_processor)
    provider._kit_test_processor = True  # type: ignore[attr-defined]
    trace.set_tracer_provider(provider)
    return provider


@contextmanager
def recorded_spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for the block; the spans that end in it are in the yielded exporter."""
    provider = _session_provider()
    exporter = InMemorySpanExporter()
    _processor.exporter = exporter
    instrument_libraries(provider)
    try:
        yield exporter
    finally:
        uninstrument_libraries()
        _processor.exporter = None
