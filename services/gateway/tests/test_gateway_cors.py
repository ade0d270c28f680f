"""CORS: allowed origins get exactly their origin back, others get nothing."""

from __future__ import annotations

import uuid

import httpx
from gateway_fakes import FakeUpstreams, GatewayProcess
from prometheus_client.parser import text_string_to_metric_families

ALLOWED = "http://localhost:5173"
REFUSED = "https://evil.example.com"


def _cors_headers(response: httpx.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.startswith("access-control-allow")}


def test_allowed_origin_gets_its_origin_credentials_and_exposed_headers(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    response = client.get("/api/v1/exams", headers={**auth, "Origin": ALLOWED})
    assert response.status_code == 200
    # The fake upstream answers `Access-Control-Allow-Origin: *`: the gateway's wins.
    assert response.headers.get_list("access-control-allow-origin") == [ALLOWED]
    assert response.headers["access-control-allow-credentials"] == "true"
    exposed = response.headers["access-control-expose-headers"].lower()
    assert {"x-request-id", "retry-after", "location"} <= {h.strip() for h in exposed.split(",")}
    assert "Origin" in response.headers.get_list("vary")


def test_second_configured_origin_is_allowed_too(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    origin = "https://app.example.edu"
    response = client.get("/api/v1/exams", headers={**auth, "Origin": origin})
    assert response.headers["access-control-allow-origin"] == origin


def test_other_origins_get_no_cors_header_at_all(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    for origin in (REFUSED, "null", ALLOWED + ".evil.com", ALLOWED.upper()):
        response = client.get("/api/v1/exams", headers={**auth, "Origin": origin})
        assert response.status_code == 200
        assert _cors_headers(response) == {}, origin
        assert "Origin" in response.headers.get_list("vary")


def test_no_origin_means_no_cors_headers_and_never_a_wildcard(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    response = client.get("/api/v1/exams", headers=auth)
    assert _cors_headers(response) == {}
    assert "*" not in response.headers.get("access-control-allow-origin", "")


def test_preflight_from_allowed_origin_is_answered_by_the_gateway(
    client: httpx.Client, upstreams: FakeUpstreams
) -> None:
    request_id = uuid.uuid4().hex
    response = client.options(
        "/api/v1/exams/x/marks",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            "X-Request-ID": request_id,
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "PUT" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == (
        "authorization, content-type, idempotency-key"
    )
    assert int(response.headers["access-control-max-age"]) > 0
    assert response.headers["x-request-id"] == request_id
    assert upstreams.hits_for(request_id) == []


def test_preflight_from_other_origin_is_refused_without_cors_headers(
    client: httpx.Client, upstreams: FakeUpstreams
) -> None:
    request_id = uuid.uuid4().hex
    response = client.options(
        "/api/v1/exams",
        headers={
            "Origin": REFUSED,
            "Access-Control-Request-Method": "POST",
            "X-Request-ID": request_id,
        },
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"
    assert _cors_headers(response) == {}
    assert upstreams.hits_for(request_id) == []


def test_gateway_errors_carry_cors_headers_for_allowed_origins(client: httpx.Client) -> None:
    for path, status in (("/api/v1/exams", 401), ("/nowhere", 404)):
        response = client.get(path, headers={"Origin": ALLOWED})
        assert response.status_code == status
        assert response.headers["access-control-allow-origin"] == ALLOWED
        assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


def _requests_counted(gateway: GatewayProcess) -> dict[tuple[str, str, str], float]:
    """``http_requests_total`` by (method, route, status), from the gateway's metrics port."""
    text = httpx.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics").text
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "http_requests"
        for s in family.samples
        if s.name == "http_requests_total"
    }


def test_preflights_are_counted_as_preflight_not_unmatched(
    client: httpx.Client, gateway: GatewayProcess
) -> None:
    before = _requests_counted(gateway)
    for origin, status in ((ALLOWED, 204), (REFUSED, 403)):
        response = client.options(
            "/api/v1/exams", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
        )
        assert response.status_code == status
    after = _requests_counted(gateway)
    for status in ("204", "403"):
        key = ("OPTIONS", "<preflight>", status)
        assert after.get(key, 0) - before.get(key, 0) == 1, key
    unmatched = ("OPTIONS", "<unmatched>", "204"), ("OPTIONS", "<unmatched>", "403")
    assert all(after.get(k, 0) == before.get(k, 0) for k in unmatched)
