"""The routing table over real HTTP, and the 404 for everything else."""

from __future__ import annotations

import uuid

import httpx
import pytest
from gateway_fakes import FakeUpstreams, GatewayProcess, raw_exchange

EXAM = "5f0c6f1e-8d1a-4c4e-9a7e-2f3b4c5d6e7f"
JOB = "0b8f8d0e-5c1e-4b55-9a52-2a6b8d1c3e4f"

ROUTES = [
    ("POST", "/api/v1/auth/login", "auth"),
    ("POST", "/api/v1/auth/refresh", "auth"),
    ("POST", "/api/v1/auth/password/forgot", "auth"),
    ("POST", "/api/v1/auth/password/reset", "auth"),
    ("POST", "/api/v1/auth/logout", "auth"),
    ("GET", "/api/v1/auth/me", "auth"),
    ("POST", "/api/v1/auth/password", "auth"),
    ("GET", "/api/v1/users", "auth"),
    ("POST", "/api/v1/users", "auth"),
    ("GET", f"/api/v1/users/{EXAM}", "auth"),
    ("PATCH", f"/api/v1/users/{EXAM}", "auth"),
    ("POST", "/api/v1/users/imports", "bulk"),
    ("POST", f"/api/v1/exams/{EXAM}/imports", "bulk"),
    ("POST", f"/api/v1/exams/{EXAM}/exports", "bulk"),
    ("GET", "/api/v1/jobs", "bulk"),
    ("GET", f"/api/v1/jobs/{JOB}", "bulk"),
    ("GET", f"/api/v1/jobs/{JOB}/errors", "bulk"),
    ("GET", "/api/v1/exams", "results"),
    ("POST", "/api/v1/exams", "results"),
    ("GET", f"/api/v1/exams/{EXAM}", "results"),
    ("PATCH", f"/api/v1/exams/{EXAM}", "results"),
    ("PUT", f"/api/v1/exams/{EXAM}/marks", "results"),
    ("GET", f"/api/v1/exams/{EXAM}/marks/audit", "results"),
    ("POST", f"/api/v1/exams/{EXAM}/results/generate", "results"),
    ("GET", f"/api/v1/exams/{EXAM}/results/S-0001", "results"),
    ("POST", f"/api/v1/exams/{EXAM}/publish", "results"),
    ("GET", "/api/v1/me/results", "results"),
    ("GET", "/api/v1/notifications", "notifier"),
    ("POST", f"/api/v1/notifications/{JOB}/read", "notifier"),
    ("POST", "/api/v1/notifications/read-all", "notifier"),
]


@pytest.mark.parametrize(("method", "path", "upstream"), ROUTES)
def test_each_public_path_reaches_its_upstream(
    client: httpx.Client, auth: dict[str, str], method: str, path: str, upstream: str
) -> None:
    response = client.request(method, path + "?limit=5&cursor=a%2Fb", headers=auth)
    assert response.status_code == 200, response.text
    echoed = response.json()
    assert echoed["upstream"] == upstream
    assert echoed["method"] == method
    assert echoed["path"] == path
    assert echoed["query"] == "limit=5&cursor=a%2Fb"


def test_jwks_is_served_by_auth_without_a_token(client: httpx.Client) -> None:
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert response.json()["keys"][0]["kid"] == "key-1"


def test_head_is_proxied_without_a_body(client: httpx.Client, auth: dict[str, str]) -> None:
    response = client.head(f"/api/v1/exams/{EXAM}", headers=auth)
    assert response.status_code == 200
    assert response.content == b""


NOT_ROUTED = [
    "/",
    "/api",
    "/api/v1",
    "/api/v1/unknown",
    "/api/v2/exams",
    "/API/v1/exams",
    "/api/v1/examsX",
    "/metrics",
    "/docs",
    "/redoc",
    "/internal/users",
    "/internal/../api/v1/exams",
    "/api/v1/internal/users",
    "/api/v1/exams/internal/recompute",
    "/api/v1/exams/INTERNAL/recompute",
    "/api/v1/exams/%69nternal/recompute",
    "/api/v1/exams/../../../internal/users",
    "/api/v1/exams/./x",
    "/api/v1/exams/..%2f..%2f..%2finternal/users",
    "/api/v1/exams/%2e%2e/%2e%2e/%2e%2e/metrics",
    "/api/v1/exams/%2E%2E/%2E%2E/%2E%2E/internal/users",
    "/api/v1/exams/%252e%252e/internal",
    "/api/v1/exams%2f..%2f..%2finternal",
    "/api/v1/exams/%5c..%5cinternal",
    "/api/v1/exams\\..\\..\\internal",
    "/api/v1/exams;/../../internal",
    "/api/v1/exams/%00",
    "/api/v1/exams/%zz",
    "//api/v1/exams",
    "/api/v1//exams",
    "/api/v1/exams//../internal",
    "/.well-known/../internal/users",
    "/.well-known/openid-configuration",
]


@pytest.mark.parametrize("path", NOT_ROUTED)
async def test_unrouted_and_crafted_paths_get_404_and_reach_no_upstream(
    gateway: GatewayProcess, upstreams: FakeUpstreams, token: str, path: str
) -> None:
    request_id = uuid.uuid4().hex
    head = (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"X-Request-ID: {request_id}\r\nConnection: close\r\n\r\n"
    ).encode()
    response = await raw_exchange(gateway.port, head)
    assert response.status == 404, (path, response)
    error = httpx.Response(404, content=response.body).json()["error"]
    assert error["code"] == "NOT_FOUND"
    assert error["request_id"] == request_id
    assert upstreams.hits_for(request_id) == []


async def test_absolute_form_target_cannot_reach_internal(
    gateway: GatewayProcess, upstreams: FakeUpstreams
) -> None:
    request_id = uuid.uuid4().hex
    head = (
        f"GET http://127.0.0.1:{upstreams.ports['auth']}/internal/users HTTP/1.1\r\n"
        f"Host: x\r\nX-Request-ID: {request_id}\r\nConnection: close\r\n\r\n"
    ).encode()
    response = await raw_exchange(gateway.port, head)
    assert response.status in (400, 404)
    assert upstreams.hits_for(request_id) == []


def test_own_endpoints_answer_on_the_public_port(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["redis"]["ok"] is True
    assert ready.json()["checks"]["jwks"]["ok"] is True
    assert client.get("/metrics").status_code == 404


def test_metrics_are_on_their_own_port_labelled_by_route_template(
    client: httpx.Client, gateway: GatewayProcess, auth: dict[str, str]
) -> None:
    client.get(f"/api/v1/exams/{uuid.uuid4()}/results/S-77", headers=auth)
    client.get("/no/such/path")
    text = httpx.get(f"http://127.0.0.1:{gateway.metrics_port}/metrics").text
    assert 'route="/api/v1/exams"' in text
    assert 'route="<unmatched>"' in text
    assert "gateway_upstream_response_seconds_bucket" in text
    assert "S-77" not in text and "/no/such/path" not in text
