"""The gateway's spans when tracing is on: a SERVER span per request, a CLIENT span per
upstream exchange, and the CLIENT span's context is the ``traceparent`` upstream
(the client's own is replaced, not forwarded beside it). With tracing off the
gateway is not wrapped at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from gateway_fakes import AUDIENCE, ISSUER, FakeUpstreams, SigningKey, free_port
from gateway_service.main import create_app
from gateway_service.settings import GatewaySettings
from opentelemetry.trace import SpanKind, StatusCode
from service_kit.testing_traces import recorded_spans
from service_kit.tracing import TracingMiddleware

CALLER_TRACE, CALLER_SPAN = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7
CALLER_TRACEPARENT = f"00-{CALLER_TRACE:032x}-{CALLER_SPAN:016x}-01"


@pytest.fixture
def settings(upstreams: FakeUpstreams, monkeypatch: pytest.MonkeyPatch) -> GatewaySettings:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    return GatewaySettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        log_level="WARNING",
        gateway_metrics_port=free_port(),
        auth_url=upstreams.url("auth"),
        results_url=upstreams.url("results"),
        bulk_url=upstreams.url("bulk"),
        notifier_url=upstreams.url("notifier"),
        jwks_url=upstreams.url("auth") + "/.well-known/jwks.json",
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    )


@asynccontextmanager
async def echoed_by_upstream(
    settings: GatewaySettings, token: str
) -> AsyncIterator[dict[str, list[str]]]:
    app = create_app(settings)
    async with LifespanManager(app) as started:  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=started.app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            answer = await client.get(
                "/api/v1/exams",
                headers={"Authorization": f"Bearer {token}", "traceparent": CALLER_TRACEPARENT},
            )
            assert answer.status_code == 200
            yield answer.json()["headers"]


async def test_a_proxied_request_is_a_server_span_with_a_client_span_whose_context_goes_upstream(
    settings: GatewaySettings, signing_key: SigningKey
) -> None:
    with recorded_spans() as spans:
        async with echoed_by_upstream(settings, signing_key.token()) as headers:
            pass

    finished = spans.get_finished_spans()
    [server] = [s for s in finished if s.kind == SpanKind.SERVER]
    [client] = [
        s
        for s in finished
        if s.kind == SpanKind.CLIENT and s.attributes and s.attributes.get("peer.service")
    ]
    assert server.name == "GET /api/v1/exams"
    assert server.context.trace_id == CALLER_TRACE
    assert server.parent is not None and server.parent.span_id == CALLER_SPAN
    assert client.name == "GET /api/v1/exams"
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    assert client.attributes is not None
    assert client.attributes["peer.service"] == "results"
    assert client.attributes["http.response.status_code"] == 200
    [traceparent] = headers["traceparent"]
    assert traceparent.startswith(f"00-{CALLER_TRACE:032x}-{client.context.span_id:016x}-")


async def test_with_tracing_off_the_gateway_is_not_wrapped_and_makes_no_span(
    settings: GatewaySettings, signing_key: SigningKey
) -> None:
    assert not isinstance(create_app(settings), TracingMiddleware)
    async with echoed_by_upstream(settings, signing_key.token()) as echoed:
        # Passed on as it came: the gateway has no span of its own to put there.
        assert echoed["traceparent"] == [CALLER_TRACEPARENT]


async def test_an_unreachable_upstream_is_a_failed_client_span(
    settings: GatewaySettings, signing_key: SigningKey
) -> None:
    down = settings.model_copy(update={"notifier_url": f"http://127.0.0.1:{free_port()}"})
    with recorded_spans() as spans:
        app = create_app(down)
        async with LifespanManager(app) as started:  # type: ignore[arg-type]
            transport = httpx.ASGITransport(app=started.app)  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                answer = await client.get(
                    "/api/v1/notifications",
                    headers={"Authorization": f"Bearer {signing_key.token()}"},
                )
        assert answer.status_code == 503

    [client_span] = [
        s
        for s in spans.get_finished_spans()
        if s.kind == SpanKind.CLIENT and s.attributes and s.attributes.get("peer.service")
    ]
    assert client_span.attributes is not None
    assert client_span.attributes["peer.service"] == "notifier"
    assert client_span.status.status_code == StatusCode.ERROR
    assert [e.name for e in client_span.events] == ["exception"]
