"""Text Postgres cannot hold and bodies that are not JSON never reach a route.

NUL and lone surrogates are refused in the envelope (400 in the path or query,
422 with a ``FORBIDDEN_CHARACTER`` detail per field of a JSON body); a route
that takes a JSON body refuses other content types with 415. Every kit-built
app gets this without asking: the sample app below declares nothing for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel
from service_kit.app import create_app
from service_kit.errors import ErrorCode
from service_kit.request_guards import is_json_media_type
from service_kit.settings import KitSettings


class Entry(BaseModel):
    code: str
    note: str | None = None


class Batch(BaseModel):
    name: str
    entries: list[Entry] = []
    tags: dict[str, str] = {}


def build_app() -> FastAPI:
    router = APIRouter()

    @router.post("/batches")
    async def create_batch(batch: Batch) -> dict[str, str]:
        return {"name": batch.name}

    @router.patch("/batches/{name}")
    async def patch_batch(name: str, batch: Batch | None = None) -> dict[str, str | None]:
        return {"name": name, "body": batch.name if batch else None}

    @router.get("/batches/{name}")
    async def get_batch(name: str, q: str | None = None) -> dict[str, str | None]:
        return {"name": name, "q": q}

    @router.post("/uploads")
    async def upload(request: Request) -> dict[str, int]:
        # A raw upload (the bulk service's CSV): no body parameter, any content type.
        return {"bytes": len(await request.body())}

    return create_app(
        KitSettings(service_name="kit-guards"), title="t", version="1", routers=[router]
    )


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit.test") as client:
        yield client


def assert_envelope(body: dict[str, object], code: ErrorCode) -> dict[str, object]:
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == code.value
    assert error["message"] and error["request_id"]
    return error


def _details(response: httpx.Response) -> list[tuple[str, str]]:
    error = assert_envelope(response.json(), ErrorCode.VALIDATION_FAILED)
    details = error["details"]
    assert isinstance(details, list)
    return [(d["field"], d["code"]) for d in details]


async def test_nul_in_a_body_field_is_422_naming_the_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/batches", json={"name": "a\x00b"})
    assert response.status_code == 422
    assert _details(response) == [("name", "FORBIDDEN_CHARACTER")]


async def test_nul_and_surrogates_in_nested_fields_are_each_named(
    client: httpx.AsyncClient,
) -> None:
    body = (
        '{"name": "ok", "entries": [{"code": "x"}, {"code": "\\u0000", "note": "\\ud800"}],'
        ' "tags": {"k": "\\udfff", "\\u0000": "v"}}'
    )
    response = await client.post(
        "/batches", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert _details(response) == [
        ("entries[1].code", "FORBIDDEN_CHARACTER"),
        ("entries[1].note", "FORBIDDEN_CHARACTER"),
        ("tags.k", "FORBIDDEN_CHARACTER"),
        ("tags", "FORBIDDEN_CHARACTER"),
    ]


async def test_ordinary_unicode_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/batches", json={"name": "Zoë 😀 \u2028 tab\t"})
    assert response.status_code == 200
    assert response.json() == {"name": "Zoë 😀 \u2028 tab\t"}


async def test_nul_in_a_query_parameter_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/batches/a", params={"q": "x\x00y"})
    assert response.status_code == 400
    assert_envelope(response.json(), ErrorCode.BAD_REQUEST)
    assert "x-request-id" in response.headers


async def test_nul_in_a_path_parameter_is_400(client: httpx.AsyncClient) -> None:
    response = await client.get("/batches/a%00b")
    assert response.status_code == 400
    assert_envelope(response.json(), ErrorCode.BAD_REQUEST)


async def test_encoded_text_without_nul_passes_the_query_check(client: httpx.AsyncClient) -> None:
    response = await client.get("/batches/a%20b", params={"q": "100% sure & more"})
    assert response.status_code == 200
    assert response.json() == {"name": "a b", "q": "100% sure & more"}


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ('{"name": "x"}', "text/plain"),
        ("name=x", "application/x-www-form-urlencoded"),
        ('{"name": "x"}', None),
    ],
)
async def test_json_route_refuses_other_content_types_with_415(
    client: httpx.AsyncClient, content: str, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post("/batches", content=content, headers=headers)
    assert response.status_code == 415
    assert_envelope(response.json(), ErrorCode.UNSUPPORTED_MEDIA_TYPE)


async def test_multipart_to_a_json_route_is_415(client: httpx.AsyncClient) -> None:
    response = await client.post("/batches", files={"file": ("a.csv", b"a,b\n")})
    assert response.status_code == 415


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "application/merge-patch+json", "APPLICATION/JSON"],
)
async def test_json_with_parameters_and_json_suffix_types_are_accepted(
    client: httpx.AsyncClient, content_type: str
) -> None:
    response = await client.post(
        "/batches", content='{"name": "x"}', headers={"content-type": content_type}
    )
    assert response.status_code == 200


async def test_optional_body_may_be_left_out(client: httpx.AsyncClient) -> None:
    response = await client.patch("/batches/a")
    assert response.status_code == 200
    assert response.json() == {"name": "a", "body": None}


async def test_a_raw_upload_route_takes_any_content_type(
    client: httpx.AsyncClient,
) -> None:
    upload = await client.post(
        "/uploads", content=b"a,b\n1,2\n", headers={"content-type": "text/csv"}
    )
    assert upload.status_code == 200
    assert upload.json() == {"bytes": 8}


def test_json_media_types() -> None:
    assert is_json_media_type("application/json")
    assert is_json_media_type("application/problem+json; charset=utf-8")
    assert not is_json_media_type("application/jsonp")
    assert not is_json_media_type("text/json+plain")
    assert not is_json_media_type("")
