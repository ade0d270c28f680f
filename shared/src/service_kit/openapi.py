"""The OpenAPI document of every kit-built service: the answers it really gives.

FastAPI documents a route's success and a 422 in its own ``{"detail": ...}``
shape. A kit-built service answers every failure in the envelope
(:mod:`service_kit.handlers`), and which failures a route can meet follows
from what the route is made of. So the kit derives them, once, for every
service present and future (:func:`install_openapi`, called by
:func:`service_kit.app.create_app`):

==============================================  =========================================
the route has                                   it can answer
==============================================  =========================================
anything                                        400 (NUL in the path or query), 500
a JSON body                                     400 (not JSON), 415 (not JSON's type), 422
query parameters                                400 (a bad parameter or cursor)
header or cookie parameters                     422
path parameters                                 404 (no such id; an id that is no UUID)
the access token (``current_principal``,        401 with ``WWW-Authenticate``, 503 while the
directly or through another dependency)         key set cannot be had; ``bearerAuth``
``require_role(...)``                           403
``@raises(code, ...)`` on the endpoint or on    each code's status, e.g. 409 ``EXAM_PUBLISHED``
any of its dependencies
==============================================  =========================================

Every error answer refers to one component, ``Error``, generated from the
catalog's enums and :class:`~service_kit.errors.ErrorDetail`; FastAPI's
``HTTPValidationError`` is gone. 401 documents ``WWW-Authenticate``, 429 and
503 ``Retry-After``, every answer ``X-Request-ID``. The gateway adds its own
answers to the merged document with :func:`add_error`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any, TypeVar

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.params import Form
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from service_kit import security
from service_kit.errors import CATALOG, ErrorCode, ErrorDetail

__all__ = [
    "BEARER_AUTH",
    "ERROR_SCHEMA_REF",
    "add_error",
    "error_schemas",
    "install_openapi",
    "operation_errors",
    "raises",
]

F = TypeVar("F", bound=Callable[..., Any])
Document = dict[str, Any]

SCHEMAS = "#/components/schemas/"
ERROR_SCHEMA_REF = SCHEMAS + "Error"
BEARER_AUTH = "bearerAuth"
BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "bearerFormat": "JWT",
    "description": "An access token from `POST /api/v1/auth/login` or `/refresh`.",
}
_JSON = "application/json"
_RAISES = "__service_kit_raises__"
_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_SECONDS = {"type": "string", "pattern": "^[0-9]+$"}
_HEADERS_BY_STATUS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "`Bearer` (RFC 6750).",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": _SECONDS,
        }
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": _SECONDS,
        }
    },
}
REQUEST_ID_HEADER = {
    "X-Request-ID": {
        "description": "The caller's request id if it sent a sane one, else a new one.",
        "required": True,
        "schema": {"type": "string"},
    }
}


def raises(*codes: ErrorCode) -> Callable[[F], F]:
    """Declares error codes an endpoint or a dependency answers with, for the document.

    Only what the kit cannot see from the route is declared: a conflict, a
    sign-in refusal, a rate limit, a role check written by the service::

        @router.post("", status_code=201)
        @raises(ErrorCode.EXAM_CODE_TAKEN)
        async def post_exam(...): ...

    On a dependency it holds for every route that uses it. The function is
    returned unchanged (marked), so it stacks with other decorators.
    """

    def mark(func: F) -> F:
        setattr(func, _RAISES, (*getattr(func, _RAISES, ()), *codes))
        return func

    return mark


class ErrorInfo(BaseModel):
    """What went wrong."""

    model_config = ConfigDict(extra="forbid")

    code: ErrorCode = Field(description="The kind of failure (docs/errors.md).")
    message: str = Field(description="For a person.")
    request_id: str = Field(description="The request's `X-Request-ID`.")
    details: list[ErrorDetail] = Field(
        default_factory=list,
        description="One entry per problem of a field; left out when there is none.",
    )


class Error(BaseModel):
    """The error envelope of every failure (API.md, Conventions)."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorInfo


@cache
def _error_schemas() -> dict[str, Any]:
    _, top = models_json_schema([(Error, "serialization")], ref_template=SCHEMAS + "{model}")
    schemas: dict[str, Any] = top["$defs"]
    return schemas


def error_schemas() -> dict[str, Any]:
    """The envelope's component schemas by name: ``Error`` and what it refers to."""
    return copy.deepcopy(_error_schemas())


def _error_response() -> dict[str, Any]:
    return {
        "description": "",
        "headers": copy.deepcopy(REQUEST_ID_HEADER),
        "content": {_JSON: {"schema": {"$ref": ERROR_SCHEMA_REF}}},
    }


def add_error(operation: dict[str, Any], code: ErrorCode, why: str | None = None) -> None:
    """Documents that ``operation`` may answer ``code`` (in the envelope), and why.

    The description of the status lists each code once with its reasons;
    headers the status always carries are documented with it.
    """
    status = CATALOG[code].status
    responses = operation.setdefault("responses", {})
    response = responses.setdefault(str(status), _error_response())
    response.setdefault("content", {_JSON: {"schema": {"$ref": ERROR_SCHEMA_REF}}})
    headers = response.setdefault("headers", {})
    headers.update(copy.deepcopy(_HEADERS_BY_STATUS.get(status, {})))
    headers.setdefault("X-Request-ID", copy.deepcopy(REQUEST_ID_HEADER["X-Request-ID"]))
    entry = f"`{code.value}`"
    reason = why or CATALOG[code].message
    lines = [line for line in str(response.get("description", "")).split("\n") if line]
    for index, line in enumerate(lines):
        if line.startswith(f"- {entry}: "):
            if reason not in line.split(": ", 1)[1].split("; "):
                lines[index] = f"{line}; {reason}"
            break
    else:
        lines.append(f"- {entry}: {reason}")
    response["description"] = "\n".join(lines)
    operation["responses"] = dict(sorted(responses.items()))


def _tree(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _tree(sub)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    return (d.call for d in _tree(dependant) if d.call is not None)


def _is_role_check(call: Callable[..., Any]) -> bool:
    # require_role builds a new closure per call; its qualified name says where
    # it was made (a kit test pins this, so a rename cannot silently drop 403s).
    return getattr(call, "__module__", None) == security.__name__ and getattr(
        call, "__qualname__", ""
    ).startswith(f"{security.require_role.__qualname__}.<locals>.")


def operation_errors(route: Any) -> list[tuple[ErrorCode, str | None]]:
    """The error answers a kit-built route can give, derived from what it is made of.

    ``route`` is an :class:`fastapi.routing.APIRoute` (or FastAPI's route context
    of one); each entry is a catalog code and why (None: the catalog's message).
    """
    dependant: Dependant = route.dependant
    parts = list(_tree(dependant))
    calls = list(_calls(dependant))
    errors: list[tuple[ErrorCode, str | None]] = [
        (ErrorCode.BAD_REQUEST, "a NUL character in the path or the query"),
    ]
    body = route.body_field
    if body is not None:
        if not isinstance(body.field_info, Form):
            errors += [
                (ErrorCode.BAD_REQUEST, "the body is not valid JSON"),
                (ErrorCode.UNSUPPORTED_MEDIA_TYPE, "the body is not `application/json`"),
            ]
        errors.append((ErrorCode.VALIDATION_FAILED, "the body breaks a rule; `details` say which"))
    if any(d.query_params for d in parts):
        errors.append((ErrorCode.BAD_REQUEST, "a query parameter or the cursor is not valid"))
    if any(d.header_params or d.cookie_params for d in parts):
        errors.append((ErrorCode.VALIDATION_FAILED, "a header is not valid"))
    if any(d.path_params for d in parts):
        errors.append((ErrorCode.NOT_FOUND, "nothing has this id, or the caller may not see it"))
    if security.current_principal in calls:
        errors += [
            (ErrorCode.AUTH_TOKEN_MISSING, None),
            (ErrorCode.AUTH_TOKEN_INVALID, None),
            (ErrorCode.AUTH_TOKEN_EXPIRED, None),
            (ErrorCode.UPSTREAM_UNAVAILABLE, "access tokens cannot be verified right now"),
        ]
    if any(_is_role_check(call) for call in calls):
        errors.append((ErrorCode.FORBIDDEN, "the caller's role may not do this"))
    for call in [*calls, route.endpoint]:
        errors += [(code, None) for code in getattr(call, _RAISES, ())]
    # The kit's HTTP server refuses an over-long URL or head before any route.
    for status, why in ((414, "the URL is too long"), (431, "the headers are too large")):
        errors += [(code, why) for code, entry in CATALOG.items() if entry.status == status]
    errors.append((ErrorCode.INTERNAL, None))
    return errors


def needs_token(route: Any) -> bool:
    """Whether the route verifies an access token (then it documents ``bearerAuth``)."""
    return security.current_principal in _calls(route.dependant)


def _is_fastapi_422(response: Any) -> bool:
    schema = (response.get("content") or {}).get(_JSON, {}).get("schema", {})
    return bool(schema.get("$ref") == SCHEMAS + "HTTPValidationError")


def operations(document: Document) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every operation of a document: (path, method, operation)."""
    for path, item in (document.get("paths") or {}).items():
        for method, operation in item.items():
            if method in _METHODS and isinstance(operation, dict):
                yield path, method, operation


def describe_errors(document: Document, routes: Any) -> Document:
    """``document`` (FastAPI's) with every operation's error answers and security."""
    for _, _, operation in operations(document):
        responses = operation.get("responses", {})
        if "422" in responses and _is_fastapi_422(responses["422"]):
            del responses["422"]
        for response in responses.values():
            response.setdefault("headers", {}).update(copy.deepcopy(REQUEST_ID_HEADER))
    for context in routing.iter_route_contexts(routes):
        if not isinstance(context.original_route, routing.APIRoute):
            continue
        if not context.include_in_schema:
            continue
        item = document["paths"].get(context.path_format, {})
        for method in sorted(context.methods or ()):
            operation = item.get(method.lower())
            if operation is None:
                continue
            for code, why in operation_errors(context):
                add_error(operation, code, why)
            if needs_token(context):
                operation["security"] = [{BEARER_AUTH: []}]
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas.update(error_schemas())
    components.setdefault("securitySchemes", {})[BEARER_AUTH] = dict(BEARER_SCHEME)
    return document


def install_openapi(app: FastAPI) -> None:
    """``app.openapi()`` (served at ``/openapi.json``) documents the kit's answers.

    Built on first use, over the routes the app has then, and cached like FastAPI's.
    """

    def openapi() -> Document:
        if app.openapi_schema is None:
            document = FastAPI.openapi(app)
            app.openapi_schema = describe_errors(document, app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
