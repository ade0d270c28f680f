"""Every failure leaves a kit-built app as the envelope of API.md."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel
from service_kit.app import create_app
from service_kit.errors import (
    CATALOG,
    DetailCode,
    ErrorCode,
    ErrorDetail,
    NotFound,
    ValidationFailed,
)
from service_kit.settings import KitSettings


class Payload(BaseModel):
    name: str
    count: int


def build_app() -> FastAPI:
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def get_thing(thing_id: int) -> dict[str, int]:
        if thing_id == 0:
            raise NotFound()
        return {"id": thing_id}

    @router.post("/things")
    async def create_thing(payload: Payload) -> dict[str, str]:
        if payload.name == "bad":
            raise ValidationFailed(
                details=[ErrorDetail("name", DetailCode.VALUE_ERROR, "bad name")]
            )
        return {"name": payload.name}

    @router.get("/search")
    async def search(limit: int = 50) -> dict[str, int]:
        return {"limit": limit}

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    app = create_app(KitSettings(service_name="kit-test"), title="t", version="1", routers=[router])
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit.test") as client:
        yield client


def assert_envelope(body: dict[str, object], code: ErrorCode) -> dict[str, object]:
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == code.value
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["request_id"], str) and error["request_id"]
    return error


async def test_domain_not_found_is_the_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/things/0")
    assert response.status_code == 404
    assert_envelope(response.json(), ErrorCode.NOT_FOUND)


async def test_unknown_route_is_not_found_envelope(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert_envelope(response.json(), ErrorCode.NOT_FOUND)


async def test_wrong_method_is_an_envelope_not_starlette_detail(client: httpx.AsyncClient) -> None:
    response = await client.delete("/things/1")
    assert response.status_code == 405
    assert "detail" not in response.json()
    assert_envelope(response.json(), ErrorCode.METHOD_NOT_ALLOWED)


async def test_malformed_json_is_bad_request(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/things", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert_envelope(response.json(), ErrorCode.BAD_REQUEST)


async def test_body_validation_lists_each_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"count": "many"})
    assert response.status_code == 422
    error = assert_envelope(response.json(), ErrorCode.VALIDATION_FAILED)
    fields = {d["field"] for d in error["details"]}  # type: ignore[index, union-attr]
    assert fields == {"name", "count"}


async def test_bad_query_parameter_is_bad_request(client: httpx.AsyncClient) -> None:
    response = await client.get("/search", params={"limit": "lots"})
    assert response.status_code == 400
    error = assert_envelope(response.json(), ErrorCode.BAD_REQUEST)
    assert error["details"][0]["field"] == "limit"  # type: ignore[index]


async def test_domain_validation_details_keep_their_codes(client: httpx.AsyncClient) -> None:
    response = await client.post("/things", json={"name": "bad", "count": 1})
    error = assert_envelope(response.json(), ErrorCode.VALIDATION_FAILED)
    assert error["details"] == [{"field": "name", "code": "VALUE_ERROR", "message": "bad name"}]


async def test_unexpected_error_is_internal_without_internals(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom", headers={"x-request-id": "req-123"})
    assert response.status_code == 500
    error = assert_envelope(response.json(), ErrorCode.INTERNAL)
    assert error["request_id"] == "req-123"
    assert "secret internals" not in response.text
    assert response.headers["x-request-id"] == "req-123"


async def test_sane_request_id_is_echoed_and_insane_one_replaced(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/things/1", headers={"x-request-id": "abc-1"})
    assert echoed.headers["x-request-id"] == "abc-1"
    replaced = await client.get("/things/1", headers={"x-request-id": "bad id\twith spaces"})
    assert replaced.headers["x-request-id"] != "bad id\twith spaces"
    assert len(replaced.headers["x-request-id"]) == 32


async def test_metrics_use_route_templates_not_raw_paths(client: httpx.AsyncClient) -> None:
    for thing in (11, 12, 13):
        await client.get(f"/things/{thing}")
    text = (await client.get("/metrics")).text
    assert 'route="/things/{thing_id}"' in text
    assert "/things/11" not in text


async def test_latency_is_by_status_class_and_the_count_by_exact_status(
    client: httpx.AsyncClient,
) -> None:
    await client.get("/things/0")  # 404
    await client.get("/things/21")  # 200
    text = (await client.get("/metrics")).text
    latency = [
        line
        for line in text.splitlines()
        if line.startswith("http_request_duration_seconds_count{")
        and 'route="/things/{thing_id}"' in line
    ]
    assert any('status_class="4xx"' in line for line in latency), latency
    assert any('status_class="2xx"' in line for line in latency), latency
    assert not any('status="' in line for line in latency), latency
    assert any(
        line.startswith("http_requests_total{") and 'status="404"' in line and "thing_id" in line
        for line in text.splitlines()
    )


def test_every_catalog_code_has_a_status_and_message() -> None:
    assert set(CATALOG) == set(ErrorCode)
    for code, entry in CATALOG.items():
        assert 400 <= entry.status <= 599, code
        assert entry.message


def test_api_md_codes_are_all_in_the_catalog() -> None:
    required = {
        "BAD_REQUEST",
        "AUTH_TOKEN_MISSING",
        "AUTH_TOKEN_INVALID",
        "AUTH_TOKEN_EXPIRED",
        "AUTH_INVALID_CREDENTIALS",
        "AUTH_REFRESH_INVALID",
        "AUTH_REFRESH_REUSED",
        "FORBIDDEN",
        "NOT_FOUND",
        "EXAM_CODE_TAKEN",
        "USER_EMAIL_TAKEN",
        "STUDENT_NUMBER_TAKEN",
        "RESULTS_STALE",
        "EXAM_PUBLISHED",
        "CONFLICT",
        "PAYLOAD_TOO_LARGE",
        "UNSUPPORTED_MEDIA_TYPE",
        "VALIDATION_FAILED",
        "RATE_LIMITED",
        "AUTH_RATE_LIMITED",
        "UPSTREAM_UNAVAILABLE",
        "INTERNAL",
    }
    assert required <= {c.value for c in ErrorCode}


def test_docs_errors_md_is_generated_from_the_catalog() -> None:
    from pathlib import Path

    from service_kit.errors import catalog_markdown

    docs = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
    assert docs.read_text() == catalog_markdown(), "run `make docs` to regenerate docs/errors.md"
