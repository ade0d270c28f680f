"""An upstream that is down, not built yet or too slow gets 503 with Retry-After, never 500."""

from __future__ import annotations

import time
import uuid

import httpx
from gateway_fakes import GatewayProcess


def test_upstream_not_listening_gets_503_with_retry_after(
    faulty_gateway: GatewayProcess, auth: dict[str, str]
) -> None:
    request_id = uuid.uuid4().hex
    response = httpx.get(
        faulty_gateway.url + "/api/v1/notifications",
        headers={**auth, "X-Request-ID": request_id, "Origin": "http://localhost:5173"},
    )
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "UPSTREAM_UNAVAILABLE"
    assert error["request_id"] == request_id
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"


def test_upstream_down_with_a_body_still_gets_503(
    faulty_gateway: GatewayProcess, auth: dict[str, str]
) -> None:
    response = httpx.post(
        faulty_gateway.url + "/api/v1/notifications/read-all", headers=auth, json={"a": 1}
    )
    assert response.status_code == 503


def test_upstream_too_slow_gets_503_within_the_budget(
    faulty_gateway: GatewayProcess, auth: dict[str, str]
) -> None:
    started = time.monotonic()
    response = httpx.get(
        faulty_gateway.url + "/api/v1/exams/slow?seconds=5", headers=auth, timeout=10
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert "retry-after" in response.headers
    assert elapsed < 2.5


def test_other_upstreams_keep_working_while_one_is_down(
    faulty_gateway: GatewayProcess, auth: dict[str, str]
) -> None:
    assert httpx.get(faulty_gateway.url + "/api/v1/jobs", headers=auth).status_code == 200
