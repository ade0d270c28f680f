"""Pure parts of the gateway: path checks, routing, header rules, OpenAPI merge, settings,
and the rate limiters against the real Redis."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from gateway_service.openapi import merge_documents
from gateway_service.proxy.headers import (
    UpstreamLocations,
    downstream_response_headers,
    upstream_request_headers,
)
from gateway_service.proxy.pool import Origin
from gateway_service.ratelimit import BatchedRateLimiter, ExactRateLimiter
from gateway_service.routing import is_safe_path, match_route, needs_token
from gateway_service.settings import GatewaySettings
from pydantic import ValidationError
from redis.asyncio import Redis


@pytest.mark.parametrize(
    "raw",
    [
        b"/api/v1/exams",
        b"/api/v1/exams/abc/results/%C3%89-001",
        b"/api/v1/exams/",
        b"/.well-known/jwks.json",
    ],
)
def test_ordinary_paths_are_safe(raw: bytes) -> None:
    assert is_safe_path(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"api/v1/exams",
        b"/api/v1/../internal",
        b"/api/v1/./exams",
        b"/api/v1/%2e%2e/internal",
        b"/api/v1/%2E./internal",
        b"/api/v1/exams%2finternal",
        b"/api/v1/exams%5Cinternal",
        b"/api/v1/%25",
        b"/api/v1/%zz",
        b"/api/v1/%2",
        b"/api//v1",
        b"/api/v1/exams;x",
        b"/api/v1/exams\\x",
        b"/api/v1/%00",
        b"/api/v1/%0d%0a",
        b"/api/v1/exams/S%20001",
        "/api/v1/exams/é".encode(),
    ],
)
def test_ambiguous_paths_are_refused(raw: bytes) -> None:
    assert not is_safe_path(raw)


def test_internal_segments_never_route_anywhere() -> None:
    assert match_route("/api/v1/exams/internal") is None
    assert match_route("/api/v1/Internal/x") is None
    assert match_route("/api/v1/exams/x/imports").upstream == "bulk"  # type: ignore[union-attr]
    assert match_route("/api/v1/exams/x/imports/").upstream == "bulk"  # type: ignore[union-attr]
    assert match_route("/api/v1/users/imports").upload  # type: ignore[union-attr]
    assert match_route("/api/v1/jobs/x/download").transfer  # type: ignore[union-attr]
    assert not match_route("/api/v1/jobs/x").transfer  # type: ignore[union-attr]


def test_only_the_documented_calls_are_token_free() -> None:
    login = match_route("/api/v1/auth/login")
    assert login is not None
    assert not needs_token(login, "POST", "/api/v1/auth/login")
    assert needs_token(login, "GET", "/api/v1/auth/login")
    assert needs_token(login, "POST", "/api/v1/auth/login/")
    for path in ("/api/v1/auth/password/forgot", "/api/v1/auth/password/reset"):
        route = match_route(path)
        assert route is not None and route.upstream == "auth"
        assert not needs_token(route, "POST", path)
        assert needs_token(route, "GET", path)
    # Changing a known password is for the signed-in only.
    assert needs_token(login, "POST", "/api/v1/auth/password")
    jwks = match_route("/.well-known/jwks.json")
    assert jwks is not None and not needs_token(jwks, "GET", "/.well-known/jwks.json")


def test_connection_cannot_strip_the_headers_the_gateway_sets() -> None:
    headers, framing = upstream_request_headers(
        [
            (b"connection", b"x-forwarded-for, x-request-id, x-other"),
            (b"x-other", b"1"),
            (b"content-length", b"5"),
        ],
        "192.0.2.1",
        "https",
        "rid",
    )
    names = [n for n, _ in headers]
    assert b"x-other" not in names
    assert (b"x-forwarded-for", b"192.0.2.1") in headers
    assert (b"x-request-id", b"rid") in headers
    # The length is re-sent by the client from the validated framing, never copied.
    assert b"content-length" not in names
    assert framing.content_length == 5 and framing.has_body


def test_conflicting_content_lengths_are_invalid() -> None:
    _, framing = upstream_request_headers(
        [(b"content-length", b"5"), (b"content-length", b"6")], "ip", "http", "r"
    )
    assert framing.invalid


def test_transfer_encoding_wins_over_content_length() -> None:
    headers, framing = upstream_request_headers(
        [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")], "ip", "http", "r"
    )
    assert framing.chunked and framing.content_length is None
    assert not any(n in (b"content-length", b"transfer-encoding") for n, _ in headers)


def test_response_headers_drop_hop_by_hop_server_and_upstream_cors() -> None:
    out = downstream_response_headers(
        (
            (b"Connection", b"close, X-Hop"),
            (b"X-Hop", b"1"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Server", b"uvicorn"),
            (b"Access-Control-Allow-Origin", b"*"),
            (b"Content-Type", b"text/csv"),
            (b"Set-Cookie", b"a=b"),
        ),
        UpstreamLocations(()),
    )
    assert out == [(b"content-type", b"text/csv"), (b"set-cookie", b"a=b")]


LOCATIONS = UpstreamLocations(
    [Origin.parse("http://127.0.0.1:8001"), Origin.parse("http://results.svc:8002/base")]
)


@pytest.mark.parametrize(
    ("location", "public"),
    [
        # An upstream's own absolute URL becomes the same path on the gateway.
        (b"http://127.0.0.1:8001/api/v1/users", b"/api/v1/users"),
        (b"HTTP://127.0.0.1:8001/api/v1/users?role=admin#x", b"/api/v1/users?role=admin#x"),
        (b"http://127.0.0.1:8001", b"/"),
        (b"//127.0.0.1:8001/api/v1/users", b"/api/v1/users"),
        (b"http:\\\\127.0.0.1:8001\\api\\v1", b"/api/v1"),
        (b"http://RESULTS.svc:8002/base/api/v1/exams/1", b"/api/v1/exams/1"),
        # A path that would read as another host keeps one leading slash.
        (b"http://127.0.0.1:8001//evil.example/x", b"/evil.example/x"),
        # On an upstream's host but no path of the gateway's: dropped.
        (b"http://127.0.0.1:9100/metrics", None),
        (b"http://results.svc:8002/elsewhere", None),
        (b"http://127.0.0.1:notaport/x", None),
        # Relative references and other hosts are passed on as they are.
        (b"/api/v1/jobs/7", b"/api/v1/jobs/7"),
        (b"https://docs.example.edu/help", b"https://docs.example.edu/help"),
    ],
)
def test_a_location_naming_an_upstream_never_reaches_the_client(
    location: bytes, public: bytes | None
) -> None:
    out = downstream_response_headers(
        [(b"Location", location), (b"Content-Location", location)], LOCATIONS
    )
    expected = [] if public is None else [(b"location", public), (b"content-location", public)]
    assert out == expected


def test_merge_keeps_routed_paths_of_their_owner_only() -> None:
    merged = merge_documents(
        {
            "results": {
                "openapi": "3.1.0",
                "paths": {"/api/v1/exams": {}, "/internal/x": {}, "/api/v1/jobs": {}},
            },
            "bulk": None,
        },
        title="t",
        version="1",
    )
    assert list(merged["paths"]) == ["/api/v1/exams"]
    assert merged["x-unavailable"] == ["bulk"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CORS_ALLOW_ORIGINS": "*"}, "refused"),
        ({"GATEWAY_METRICS_PORT": "8000"}, "must differ"),
        ({"ENVIRONMENT": "production", "GATEWAY_JWT_REQUIRED": "false"}, "refused in production"),
        ({"RESULTS_URL": "results:8002"}, "RESULTS_URL: .* not an http"),
        ({"AUTH_URL": "http://auth:8001?x=1"}, "AUTH_URL: .* must not carry a query"),
        ({"JWKS_URL": "ftp://auth/.well-known/jwks.json"}, "JWKS_URL: .* not an http"),
    ],
)
def test_unsafe_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=message):
        GatewaySettings()


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = GatewaySettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.gateway_port == 8000
    assert settings.gateway_host == "127.0.0.1"
    assert settings.gateway_metrics_port == 9100
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.max_upload_bytes == 50 * 1024 * 1024
    assert settings.cors_origins == frozenset({"http://localhost:5173"})
    assert settings.upstreams["results"] == "http://127.0.0.1:8002"
    assert settings.upstream_keepalive_seconds < 75
    prod = GatewaySettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="production",
        service_client_secret="a long production client secret",
    )
    assert prod.gateway_jwt_required


def test_production_refuses_the_development_client_secret() -> None:
    with pytest.raises(ValidationError, match="production for: SERVICE_CLIENT_SECRET"):
        GatewaySettings(_env_file=None, environment="production")  # type: ignore[call-arg]


async def test_batched_limiter_counts_locally_and_shares_through_redis() -> None:
    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    prefix = f"test:gateway:unit:{uuid.uuid4().hex}:"
    one = BatchedRateLimiter(redis, prefix, limit=4, sync_interval_seconds=3600)
    two = BatchedRateLimiter(redis, prefix, limit=4, sync_interval_seconds=3600)
    try:
        assert [await one.retry_after("u") for _ in range(3)] == [None, None, None]
        await one.sync()
        assert await two.retry_after("u") is None  # learns the total at its next sync
        await two.sync()
        retry = await two.retry_after("u")
        assert retry is not None and 1 <= retry <= 60
        assert await two.retry_after("someone-else") is None
    finally:
        keys = [k async for k in redis.scan_iter(prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def test_exact_limiter_fails_open_fast_when_redis_is_down() -> None:
    redis = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    limiter = ExactRateLimiter(redis, "test:", limit=1)
    try:
        async with asyncio.timeout(2):
            assert [await limiter.retry_after("u") for _ in range(50)] == [None] * 50
    finally:
        await redis.aclose()
