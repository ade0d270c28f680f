"""The kit's OpenAPI document lists every answer a route can give, in the envelope.

Also the ``Allow`` header of a 405, which schemathesis found naming only one
route's methods of a path that has several.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import jsonschema
import pytest
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel
from schemathesis.specs.openapi.definitions import OPENAPI_31
from service_kit.app import create_app
from service_kit.errors import (
    DetailCode,
    ErrorCode,
    ErrorDetail,
    Forbidden,
    error_body,
)
from service_kit.openapi import ERROR_SCHEMA_REF, error_schemas, raises
from service_kit.patch import NULL_CLEARS, PatchModel
from service_kit.security import CurrentUser, Principal, require_role
from service_kit.settings import KitSettings


class Thing(BaseModel):
    name: str


class ThingPatch(PatchModel):
    name: str | None = None
    note: Annotated[str | None, NULL_CLEARS] = None


@raises(ErrorCode.FORBIDDEN)
async def owner_only() -> None:
    raise Forbidden()


def build_app() -> FastAPI:
    router = APIRouter()

    @router.get("/things")
    async def list_things(limit: int = 50) -> list[Thing]:
        return []

    @router.post("/things", status_code=201)
    @raises(ErrorCode.CONFLICT)
    async def create_thing(body: Thing, _: CurrentUser) -> Thing:
        return body

    @router.get("/things/{thing_id}")
    async def get_thing(
        thing_id: int, _: Annotated[Principal, Depends(require_role("admin"))]
    ) -> Thing:
        return Thing(name=str(thing_id))

    @router.patch("/things/{thing_id}")
    async def patch_thing(
        thing_id: int, body: ThingPatch, _: Annotated[None, Depends(owner_only)]
    ) -> Thing:
        return Thing(name="x")

    @router.post("/things/{thing_id}/refresh")
    async def refresh_thing(thing_id: int) -> Thing:
        return Thing(name="x")

    @router.get("/things/{thing_id}/{part}")
    async def get_part(thing_id: int, part: str) -> Thing:
        return Thing(name=part)

    return create_app(
        KitSettings(service_name="kit-test"), title="t", version="1", routers=[router]
    )


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_app().openapi()


def _statuses(document: dict[str, Any], path: str, method: str) -> set[str]:
    return set(document["paths"][path][method]["responses"])


def test_the_document_is_openapi_3_1_with_valid_json_schemas(document: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(OPENAPI_31).validate(document)
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    assert "HTTPValidationError" not in str(document)


def test_each_route_lists_what_the_kit_answers_for_it(document: dict[str, Any]) -> None:
    # Every route: a NUL in the path or query (400), an unexpected failure (500).
    assert {"400", "500"} <= _statuses(document, "/things", "get")
    assert "422" not in _statuses(document, "/things", "get")  # a bad query is 400
    # A JSON body: 400 (not JSON), 415, 422; the token: 401 and 503; @raises: 409.
    assert _statuses(document, "/things", "post") >= {"201", "400", "401", "409", "415", "422"}
    assert "503" in _statuses(document, "/things", "post")
    assert "404" not in _statuses(document, "/things", "post")
    # A path id: 404; require_role: 403 (and the token's 401).
    assert _statuses(document, "/things/{thing_id}", "get") >= {"401", "403", "404"}
    # @raises on a dependency holds for the routes that use it.
    assert "403" in _statuses(document, "/things/{thing_id}", "patch")
    assert "401" not in _statuses(document, "/things/{thing_id}", "patch")


def test_error_answers_refer_to_the_envelope_with_their_headers(document: dict[str, Any]) -> None:
    responses = document["paths"]["/things"]["post"]["responses"]
    for status, response in responses.items():
        assert response["headers"]["X-Request-ID"]["required"] is True
        if status.startswith(("4", "5")):
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": ERROR_SCHEMA_REF}
    assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert responses["503"]["headers"]["Retry-After"]["required"] is True
    assert "`AUTH_TOKEN_EXPIRED`" in responses["401"]["description"]
    assert "`CONFLICT`" in responses["409"]["description"]


def test_only_routes_that_verify_a_token_carry_the_bearer_scheme(
    document: dict[str, Any],
) -> None:
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": document["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert document["paths"]["/things"]["post"]["security"] == [{"bearerAuth": []}]
    assert document["paths"]["/things/{thing_id}"]["get"]["security"] == [{"bearerAuth": []}]
    assert "security" not in document["paths"]["/things"]["get"]
    assert "security" not in document["paths"]["/things/{thing_id}"]["patch"]


@pytest.mark.parametrize(
    "body",
    [
        error_body(ErrorCode.NOT_FOUND, "req-1"),
        error_body(
            ErrorCode.VALIDATION_FAILED,
            "req-2",
            details=[ErrorDetail("marks[3].mark", DetailCode.MARK_OUT_OF_RANGE, "too high")],
        ),
    ],
)
def test_the_envelope_schema_describes_what_the_kit_sends(body: dict[str, Any]) -> None:
    schema = {"$ref": ERROR_SCHEMA_REF, "components": {"schemas": error_schemas()}}
    jsonschema.Draft202012Validator(schema).validate(body)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate({"detail": "FastAPI's shape"})


def test_a_patch_field_is_nullable_in_the_schema_only_where_null_clears_it(
    document: dict[str, Any],
) -> None:
    properties = document["components"]["schemas"]["ThingPatch"]["properties"]
    assert properties["name"]["type"] == "string"
    assert "anyOf" not in properties["name"] and "default" not in properties["name"]
    assert {"type": "null"} in properties["note"]["anyOf"]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://kit.test") as client:
        yield client


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/things", "GET, POST"),
        ("/things/7", "GET, PATCH"),
        # A literal segment beats a parameter: /things/{id}/{part} matches too.
        ("/things/7/refresh", "POST"),
    ],
)
async def test_a_405_allows_every_method_of_the_resource(
    client: httpx.AsyncClient, path: str, allowed: str
) -> None:
    response = await client.request("DELETE", path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
