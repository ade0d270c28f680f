"""Traces end to end (issue 11, item 2): every process exports over OTLP/HTTP to a real
receiver in this test, and one request is one trace across the services and the
broker, however late the outbox relay publishes.

The suite of this module is its own (the shared one runs without OTEL_*), with
a short batch delay so spans arrive within a second of ending.
"""

from __future__ import annotations

import gzip
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from bulk_support import create_exam, create_user, login, ok, upload, wait_for_job
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, E2E, bearer, running_suite
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanMessage
from service_kit.testing import serve_in_thread
from starlette.types import Receive, Scope, Send

pytestmark = pytest.mark.e2e

SERVER = SpanMessage.SpanKind.SPAN_KIND_SERVER
CLIENT = SpanMessage.SpanKind.SPAN_KIND_CLIENT
PRODUCER = SpanMessage.SpanKind.SPAN_KIND_PRODUCER
CONSUMER = SpanMessage.SpanKind.SPAN_KIND_CONSUMER


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, str]


class OtlpReceiver:
    """An OTLP/HTTP traces endpoint (protobuf bodies at /v1/traces) that keeps every span."""

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()

    def in_trace(self, trace_id: str) -> list[ReceivedSpan]:
        with self._lock:
            return [s for s in self._spans if s.trace_id == trace_id]

    def _keep(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        received: list[ReceivedSpan] = []
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            service=resource.get("service.name", ""),
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes={a.key: a.value.string_value for a in span.attributes},
                        )
                    )
        with self._lock:
            self._spans.extend(received)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        if headers.get(b"content-encoding") == b"gzip":
            body = gzip.decompress(body)
        status = 404
        answer = b""
        if scope["method"] == "POST" and scope["path"] == "/v1/traces":
            self._keep(body)
            status, answer = 200, ExportTraceServiceResponse().SerializeToString()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/x-protobuf")],
            }
        )
        await send({"type": "http.response.body", "body": answer})


@dataclass
class TracedSuite:
    e2e: E2E
    receiver: OtlpReceiver
    admin_token: str


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TracedSuite]:
    receiver = OtlpReceiver()
    url, stop = serve_in_thread(receiver, "otlp-receiver")
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        # Milliseconds: spans leave each process a moment after they end.
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    try:
        with running_suite(tmp_path_factory.mktemp("traces"), extra_env=otel) as e2e:
            with e2e.client() as client:
                tokens = ok(
                    client.post(
                        "/api/v1/auth/login",
                        json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
                    )
                )
            yield TracedSuite(e2e, receiver, tokens["access_token"])
    finally:
        stop()


def caller_context() -> tuple[str, str, dict[str, str]]:
    """A trace id and span id of the test's own, and the traceparent that carries them."""
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    return trace_id, span_id, {"traceparent": f"00-{trace_id}-{span_id}-01"}


def wait_for_spans(
    receiver: OtlpReceiver, trace_id: str, wanted: list[tuple[str, int, str]], timeout: float = 60
) -> list[ReceivedSpan]:
    """The trace's spans once it holds a span for each (service, kind, name part) wanted."""
    deadline = time.monotonic() + timeout
    while True:
        spans = receiver.in_trace(trace_id)
        missing = [
            w
            for w in wanted
            if not any(s.service == w[0] and s.kind == w[1] and w[2] in s.name for s in spans)
        ]
        if not missing:
            # Parents end after their children: let the last batches arrive.
            time.sleep(1.5)
            return receiver.in_trace(trace_id)
        assert time.monotonic() < deadline, f"trace {trace_id} lacks {missing}: {names(spans)}"
        time.sleep(0.2)


def wait_for_log_lines(log: Path, *, trace_id: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The JSON lines of ``log`` that name ``trace_id``, once there is one."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [
            orjson.loads(raw) for raw in log.read_bytes().splitlines() if trace_id.encode() in raw
        ]
        found = [line for line in lines if line.get("trace_id") == trace_id]
        if found:
            return found
        assert time.monotonic() < deadline, f"no line of {log.name} names trace {trace_id}"
        time.sleep(0.2)


def names(spans: list[ReceivedSpan]) -> list[str]:
    return sorted(f"{s.service}:{s.name}" for s in spans)


def assert_one_tree(spans: list[ReceivedSpan], caller_span: str) -> None:
    """Every span's parent is in the trace, but the root's, which is the test's own span."""
    ids = {s.span_id for s in spans}
    orphans = [s for s in spans if s.parent_span_id not in ids and s.parent_span_id != caller_span]
    assert orphans == [], names(orphans)


def the(
    spans: list[ReceivedSpan], service: str, kind: int, name_part: str, **attributes: str
) -> ReceivedSpan:
    found = [
        s
        for s in spans
        if s.service == service
        and s.kind == kind
        and name_part in s.name
        and all(s.attributes.get(k) == v for k, v in attributes.items())
    ]
    assert found, f"no {service} span like {name_part!r} in {names(spans)}"
    return found[0]


def parent_of(spans: list[ReceivedSpan], span: ReceivedSpan) -> ReceivedSpan:
    [parent] = [s for s in spans if s.span_id == span.parent_span_id]
    return parent


def test_one_publication_is_one_trace_from_the_gateway_via_results_and_the_broker_to_notifier(
    traced: TracedSuite,
) -> None:
    e2e = traced.e2e
    with e2e.client(headers=bearer(traced.admin_token)) as admin:
        student = create_user(admin, "student")
        exam = create_exam(admin, [("MATH", 100)])
        marks = [
            {
                "student_number": student["student_number"],
                "subject_code": "MATH",
                "status": "present",
                "mark": 64,
            }
        ]
        ok(admin.put(f"/api/v1/exams/{exam['id']}/marks", json={"marks": marks}))
        generation_trace, _, generation_traceparent = caller_context()
        request_id = f"traces-e2e-{generation_trace[:12]}"
        ok(
            admin.post(
                f"/api/v1/exams/{exam['id']}/results/generate",
                headers={**generation_traceparent, "X-Request-ID": request_id},
            )
        )
        trace_id, caller_span, traceparent = caller_context()
        ok(admin.post(f"/api/v1/exams/{exam['id']}/publish", headers=traceparent))

    spans = wait_for_spans(
        traced.receiver,
        trace_id,
        [
            ("gateway", SERVER, "POST"),
            ("gateway", CLIENT, "POST"),
            ("results", SERVER, "publish"),
            ("results", PRODUCER, "results.published"),
            ("notifier", CONSUMER, "process"),
        ],
    )
    assert_one_tree(spans, caller_span)
    gateway_server = the(spans, "gateway", SERVER, "POST")
    assert gateway_server.parent_span_id == caller_span
    results_server = the(spans, "results", SERVER, "publish")
    assert parent_of(spans, results_server).service == "gateway"
    assert parent_of(spans, results_server).kind == CLIENT
    producer = the(spans, "results", PRODUCER, "results.published")
    consumer = the(spans, "notifier", CONSUMER, "process", **{"event.type": "results.published"})
    assert consumer.parent_span_id == producer.span_id
    # The producer continues the request that wrote the outbox row, though the relay
    # published it from its own loop, after the request had ended.
    assert parent_of(spans, producer).service == "results"
    assert any(s.service == "results" and s.name.startswith(("SELECT", "INSERT")) for s in spans)
    # One server span per process the request crossed: FastAPI's own is off.
    servers = [s.service for s in spans if s.kind == SERVER]
    assert (servers.count("gateway"), servers.count("results")) == (1, 1), servers

    # The log line of the generation names its request's trace, beside the request id.
    assert e2e.suite.log_dir is not None
    results_log = e2e.suite.log_dir / "results.log"
    [line] = wait_for_log_lines(results_log, trace_id=generation_trace)
    assert line["request_id"] == request_id
    assert "generation" in line["msg"]


def test_one_marks_import_is_one_trace_through_bulk_results_and_the_notifier(
    traced: TracedSuite,
) -> None:
    e2e = traced.e2e
    with e2e.client(headers=bearer(traced.admin_token)) as admin:
        examiner = create_user(admin, "examiner")
        student = create_user(admin, "student")
        exam = create_exam(admin, [("MATH", 100)])
    token = login(e2e, examiner["email"])
    body = f"student_number,subject_code,mark\r\n{student['student_number']},MATH,70\r\n".encode()
    trace_id, caller_span, traceparent = caller_context()
    with e2e.client(headers=bearer(token)) as client:
        job = ok(
            upload(client, f"/api/v1/exams/{exam['id']}/imports", body, headers=traceparent),
            202,
        )
        assert wait_for_job(client, job["id"])["status"] == "succeeded"

    spans = wait_for_spans(
        traced.receiver,
        trace_id,
        [
            ("gateway", SERVER, "POST"),
            ("bulk", SERVER, "imports"),
            ("bulk", CONSUMER, "process"),
            ("results", CONSUMER, "process"),
            ("notifier", CONSUMER, "process"),
        ],
    )
    assert_one_tree(spans, caller_span)
    chunk = the(spans, "results", CONSUMER, "process", **{"event.type": "marks.import_chunk"})
    assert parent_of(spans, chunk).service == "bulk"
    assert parent_of(spans, chunk).kind == PRODUCER
    finished = the(spans, "notifier", CONSUMER, "process", **{"event.type": "bulk.job.completed"})
    assert parent_of(spans, finished).service == "bulk"
    assert {"gateway", "bulk", "results", "notifier"} <= {s.service for s in spans}
