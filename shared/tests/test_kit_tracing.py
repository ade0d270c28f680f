"""What the kit traces when the OTEL_* variables turn tracing on, and that nothing is
installed when they do not: HTTP server spans, SQLAlchemy, Redis, httpx (with
``traceparent`` sent), the outbox carrying the writer's context to the consumer,
and the trace ids on log lines."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import orjson
import pytest
import redis.asyncio
import sqlalchemy.ext.asyncio
from fastapi import APIRouter
from kit_events import Probe
from kit_support import REDIS_URL, SCHEMA, Rabbit, fast_relay, wait_until
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from redis.asyncio import Redis
from service_kit.app import create_app
from service_kit.db import Database
from service_kit.jobs import PeriodicJob, PeriodicJobs
from service_kit.logging import JsonFormatter
from service_kit.messaging import (
    EventBroker,
    QueueSpec,
    ReceivedEvent,
    add_event,
    declare_consumer_queues,
)
from service_kit.settings import KitSettings
from service_kit.testing import serve_in_thread
from service_kit.testing_traces import recorded_spans
from service_kit.tracing import TracingMiddleware, setup_tracing, trace_headers
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import Receive, Scope, Send

OTEL_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    with recorded_spans() as exporter:
        yield exporter


def finished(exporter: InMemorySpanExporter) -> Sequence[ReadableSpan]:
    return exporter.get_finished_spans()


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def wrapped(function: object) -> bool:
    return hasattr(function, "__wrapped__")


def test_nothing_is_instrumented_when_no_otel_variable_asks(
    monkeypatch: pytest.MonkeyPatch, settings: KitSettings
) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    assert setup_tracing("kit-test") is False
    assert not wrapped(sqlalchemy.ext.asyncio.create_async_engine)
    assert not wrapped(redis.asyncio.Redis.execute_command)
    assert not wrapped(httpx.AsyncHTTPTransport.handle_async_request)
    app = create_app(settings, title="t", version="1")
    assert all(m.cls is not TracingMiddleware for m in app.user_middleware)
    assert trace_headers() == {}


def test_recording_instruments_the_libraries_and_undoes_it() -> None:
    with recorded_spans():
        assert wrapped(sqlalchemy.ext.asyncio.create_async_engine)
        assert wrapped(redis.asyncio.Redis.execute_command)
        assert wrapped(httpx.AsyncHTTPTransport.handle_async_request)
    assert not wrapped(sqlalchemy.ext.asyncio.create_async_engine)
    assert not wrapped(httpx.AsyncHTTPTransport.handle_async_request)


async def test_a_request_gets_a_server_span_named_by_its_route_under_the_callers_trace(
    spans: InMemorySpanExporter, settings: KitSettings
) -> None:
    router = APIRouter()

    lines: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(orjson.loads(JsonFormatter("kit-test").format(record)))

    handler_log = logging.getLogger("kit-test.thing")

    @router.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        handler_log.warning("looking at a thing")
        return {"id": thing_id}

    app = create_app(settings, title="t", version="1", routers=[router])
    collect = Collect()
    handler_log.addHandler(collect)
    caller_trace, caller_span = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7
    traceparent = f"00-{caller_trace:032x}-{caller_span:016x}-01"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        answer = await client.get("/things/42", headers={"traceparent": traceparent})
        assert answer.status_code == 200
        for path in ("/healthz", "/readyz", "/metrics"):
            await client.get(path)
    handler_log.removeHandler(collect)

    [server] = [s for s in finished(spans) if s.kind == SpanKind.SERVER]
    assert server.name == "GET /things/{thing_id}"
    assert server.context.trace_id == caller_trace
    assert parent_id(server) == caller_span
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/things/{thing_id}"
    # The route's log line names the request's trace and span, and its request id.
    [line] = lines
    assert line["trace_id"] == f"{caller_trace:032x}"
    assert line["span_id"] == f"{server.context.span_id:016x}"
    assert line["request_id"] == answer.headers["x-request-id"]


async def test_probes_and_periodic_jobs_make_no_span_even_for_the_redis_calls_they_make(
    spans: InMemorySpanExporter, settings: KitSettings
) -> None:
    client = Redis.from_url(REDIS_URL)
    pinged: list[bool] = []

    async def ping() -> None:
        pinged.append(bool(await client.ping()))

    app = create_app(settings, title="t", version="1")
    app.state.readiness.add("redis", ping)
    jobs = PeriodicJobs([PeriodicJob("pinger", ping, interval_seconds=0.05)])
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
            assert (await http.get("/readyz")).status_code == 200
        jobs.start()
        await wait_until(lambda: len(pinged) >= 3)
        await jobs.stop()
        # stop() may cancel a PING mid-read, leaving that connection's answer unread
        # (a later PING on it once waited forever): the request below gets a new client.
        await client.aclose()
        client = Redis.from_url(REDIS_URL)
        # The same call from a request is traced: the suppression is theirs alone.
        with trace.get_tracer("test").start_as_current_span("request"):
            await ping()
    finally:
        await client.aclose()

    assert [s.name for s in finished(spans)] == ["PING", "request"]


async def test_sql_statements_are_spans_of_the_current_trace(
    spans: InMemorySpanExporter, db_settings: KitSettings
) -> None:
    db = Database(db_settings)  # created while tracing is on, as the host does
    try:
        with trace.get_tracer("test").start_as_current_span("request") as request:
            async with db.read_session() as session:
                assert await session.scalar(text("SELECT 41 + 1")) == 42
    finally:
        await db.dispose()

    [select] = [s for s in finished(spans) if s.attributes and "SELECT 41" in str(s.attributes)]
    assert select.kind == SpanKind.CLIENT
    assert select.context.trace_id == request.get_span_context().trace_id
    assert parent_id(select) == request.get_span_context().span_id


async def test_redis_commands_are_spans_of_the_current_trace(spans: InMemorySpanExporter) -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        with trace.get_tracer("test").start_as_current_span("request") as request:
            assert await client.ping()
    finally:
        await client.aclose()

    [ping] = [s for s in finished(spans) if s.name == "PING"]
    assert ping.kind == SpanKind.CLIENT
    assert parent_id(ping) == request.get_span_context().span_id


async def test_an_httpx_call_is_a_client_span_whose_context_the_callee_receives(
    spans: InMemorySpanExporter,
) -> None:
    received: list[str] = []

    async def callee(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = dict(scope["headers"])
        received.append(headers.get(b"traceparent", b"").decode())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    url, stop = serve_in_thread(callee, "traced-callee")
    try:
        with trace.get_tracer("test").start_as_current_span("request") as request:
            async with httpx.AsyncClient() as client:
                assert (await client.get(f"{url}/ping")).status_code == 204
    finally:
        stop()

    [call] = [s for s in finished(spans) if s.kind == SpanKind.CLIENT]
    assert parent_id(call) == request.get_span_context().span_id
    trace_id, span_id = call.context.trace_id, call.context.span_id
    [traceparent] = received
    assert traceparent.startswith(f"00-{trace_id:032x}-{span_id:016x}-")


async def test_an_event_relayed_later_joins_the_trace_that_wrote_it(
    db: Database,
    db_settings: KitSettings,
    settings: KitSettings,
    rabbit: Rabbit,
    unique: str,
    spans: InMemorySpanExporter,
) -> None:
    """Request span -> (outbox row, relayed later) PRODUCER span -> CONSUMER span."""
    # The fixture's database made the tables untraced; this one is traced.
    db = Database(db_settings)
    try:
        await relay_and_consume(db, settings, rabbit, unique, spans)
    finally:
        await db.dispose()


async def relay_and_consume(
    db: Database, settings: KitSettings, rabbit: Rabbit, unique: str, spans: InMemorySpanExporter
) -> None:
    spec = rabbit.track(QueueSpec(f"traced-{unique}", ("kit.probe",)))
    await declare_consumer_queues(rabbit.channel, settings, spec)
    with trace.get_tracer("test").start_as_current_span("request") as request:
        async with db.transaction() as session:
            event_id = await add_event(session, Probe(n=1))
    request_context = request.get_span_context()

    handled: list[dict[str, Any]] = []

    async def handle(event: ReceivedEvent[Probe], _: AsyncSession) -> None:
        current = trace.get_current_span().get_span_context()
        handled.append({"trace_id": current.trace_id, "span_id": current.span_id})

    events = EventBroker(settings, prefetch=4, graceful_timeout_seconds=5.0)
    consumer = events.consumer(spec, db=db, schema=SCHEMA)
    consumer.handler(Probe)(handle)
    async with events:
        # From the relay's task, outside any span, as in a service.
        relay = fast_relay(db, settings)
        relay.start()
        try:
            await wait_until(lambda: bool(handled))
        finally:
            await relay.stop()

    [producer] = [s for s in finished(spans) if s.kind == SpanKind.PRODUCER]
    [consumed] = [s for s in finished(spans) if s.kind == SpanKind.CONSUMER]
    assert producer.name == "publish kit.probe"
    assert producer.context.trace_id == request_context.trace_id
    assert parent_id(producer) == request_context.span_id
    assert producer.attributes is not None
    assert producer.attributes["messaging.message.id"] == str(event_id)
    assert consumed.context.trace_id == request_context.trace_id
    assert parent_id(consumed) == producer.context.span_id
    assert handled == [{"trace_id": request_context.trace_id, "span_id": consumed.context.span_id}]
    # The relay's own polling statements start no trace of their own.
    roots = [s for s in finished(spans) if s.parent is None and s.name != "request"]
    assert roots == []


async def test_log_lines_carry_the_trace_and_span_ids_of_the_current_span(
    spans: InMemorySpanExporter,
) -> None:
    formatter = JsonFormatter("kit-test")

    def line() -> dict[str, Any]:
        record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello", (), None)
        entry: dict[str, Any] = orjson.loads(formatter.format(record))
        return entry

    assert "trace_id" not in line()
    with trace.get_tracer("test").start_as_current_span("request") as request:
        entry = line()
        await asyncio.sleep(0)
    context = request.get_span_context()
    assert entry["trace_id"] == f"{context.trace_id:032x}"
    assert entry["span_id"] == f"{context.span_id:016x}"
    assert "request_id" in entry


async def test_spans_keep_no_query_string_a_users_search_or_a_call_sent(
    spans: InMemorySpanExporter, settings: KitSettings
) -> None:
    # A user search's q= is an email address: no span attribute may carry it.
    router = APIRouter()

    @router.get("/users")
    async def users(q: str = "") -> dict[str, str]:
        return {"q": q}

    async def callee(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    app = create_app(settings, title="t", version="1", routers=[router])
    url, stop = serve_in_thread(callee, "query-callee")
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
            answer = await client.get("/users", params={"q": "ann.secret@example.com"})
            assert answer.json() == {"q": "ann.secret@example.com"}
        async with httpx.AsyncClient() as client:
            await client.get(f"{url}/internal/users", params={"email": "ann.secret@example.com"})
    finally:
        stop()

    kinds = {s.kind for s in finished(spans)}
    assert {SpanKind.SERVER, SpanKind.CLIENT} <= kinds
    for span in finished(spans):
        for key, value in (span.attributes or {}).items():
            assert "secret" not in str(value), (span.name, key, value)
            assert "%40" not in str(value), (span.name, key, value)
    [server] = [s for s in finished(spans) if s.kind == SpanKind.SERVER]
    assert server.attributes is not None
    assert any(str(v).endswith("/users") for v in server.attributes.values())
