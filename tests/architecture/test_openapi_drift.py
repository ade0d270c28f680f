"""The merged OpenAPI document cannot drift from the code that answers.

Built from the real services' apps and the gateway's merge (no process runs):
it is valid OpenAPI 3.1 with valid JSON Schemas, and every public route
documents at least the error statuses the kit can answer for it (derived from
the route, :func:`service_kit.openapi.operation_errors`) and those the gateway
answers in front of it, in the envelope; the bearer scheme is on exactly the
operations the gateway checks a token for.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from auth_service.keys import generate_key_file
from auth_service.main import create_app as create_auth_app
from auth_service.settings import AuthSettings
from fastapi import FastAPI, routing
from gateway_service.openapi import merge_documents
from gateway_service.routing import match_route, needs_token
from results_service.main import create_app as create_results_app
from schemathesis.specs.openapi.definitions import OPENAPI_31
from service_kit.errors import CATALOG
from service_kit.openapi import ERROR_SCHEMA_REF, operation_errors, operations


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FastAPI]:
    key = tmp_path_factory.mktemp("keys") / "jwt.pem"
    generate_key_file(key)
    return {
        "auth": create_auth_app(AuthSettings(jwt_signing_key_file=str(key))),
        "results": create_results_app(),
    }


@pytest.fixture(scope="module")
def merged(apps: dict[str, FastAPI]) -> dict[str, Any]:
    documents: dict[str, dict[str, Any] | None] = {n: a.openapi() for n, a in apps.items()}
    return merge_documents({**documents, "bulk": None, "notifier": None}, title="t", version="1")


def _public_routes(app: FastAPI) -> list[Any]:
    return [
        route
        for route in routing.iter_route_contexts(app.routes)
        if isinstance(route.original_route, routing.APIRoute)
        and route.include_in_schema
        and match_route(route.path_format) is not None
    ]


def test_the_merged_document_is_valid_openapi_3_1(merged: dict[str, Any]) -> None:
    assert merged["openapi"].startswith("3.1.")
    jsonschema.Draft202012Validator(OPENAPI_31).validate(merged)
    for schema in merged["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    text = str(merged)
    for name in merged["components"]["schemas"]:
        assert f"#/components/schemas/{name}" in text or name == "Error", f"{name} unused"
    for ref in {part.split("'")[0] for part in text.split("'$ref': '")[1:]}:
        assert ref.removeprefix("#/components/schemas/") in merged["components"]["schemas"], ref
    assert "HTTPValidationError" not in text


def test_every_route_documents_what_the_kit_and_the_gateway_answer(
    apps: dict[str, FastAPI], merged: dict[str, Any]
) -> None:
    seen = 0
    for name, app in apps.items():
        for route in _public_routes(app):
            for method in route.methods:
                operation = merged["paths"][route.path_format][method.lower()]
                documented = set(operation["responses"])
                expected = {str(CATALOG[code].status) for code, _ in operation_errors(route)}
                gateway = match_route(route.path_format)
                assert gateway is not None and gateway.upstream == name
                if needs_token(gateway, method, route.path_format):
                    expected |= {"401", "429", "503"}
                if "requestBody" in operation:
                    expected.add("413")
                missing = expected - documented
                assert not missing, f"{method} {route.path_format} lacks {sorted(missing)}"
                seen += 1
    assert seen >= 20


def test_error_answers_use_the_envelope_and_tokens_the_bearer_scheme(
    merged: dict[str, Any],
) -> None:
    assert merged["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, method, operation in operations(merged):
        for status, response in operation["responses"].items():
            assert response["headers"]["X-Request-ID"]["required"] is True, (path, status)
            if int(status) >= 400:
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_SCHEMA_REF}, (path, method, status)
        route = match_route(path)
        assert route is not None
        wants_token = needs_token(route, method.upper(), path)
        assert (operation.get("security") == [{"bearerAuth": []}]) == wants_token, (path, method)


def test_token_free_calls_are_exactly_those_of_api_md(merged: dict[str, Any]) -> None:
    free = {
        f"{method.upper()} {path}"
        for path, method, operation in operations(merged)
        if "security" not in operation
    }
    assert free == {
        "POST /api/v1/auth/login",
        "POST /api/v1/auth/refresh",
        "POST /api/v1/auth/password/forgot",
        "POST /api/v1/auth/password/reset",
        "GET /.well-known/jwks.json",
    }
