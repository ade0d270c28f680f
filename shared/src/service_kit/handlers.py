"""Central exception handlers: every failure leaves a service as the envelope.

Installed by :func:`service_kit.app.create_app`; they cover our own errors,
FastAPI's request validation, Starlette's 404/405 and anything unexpected.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request, routing
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from service_kit.context import current_request_id
from service_kit.db import database_unavailable
from service_kit.detail_codes import PARSING_CODES
from service_kit.errors import DetailCode, ErrorCode, ErrorDetail, ServiceError, error_body

log = logging.getLogger("service_kit.errors")

_STATUS_TO_CODE = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.AUTH_TOKEN_INVALID,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    414: ErrorCode.URI_TOO_LONG,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.VALIDATION_FAILED,
    429: ErrorCode.RATE_LIMITED,
    431: ErrorCode.HEADER_FIELDS_TOO_LARGE,
    503: ErrorCode.UPSTREAM_UNAVAILABLE,
}


def envelope_response(
    status: int,
    code: ErrorCode,
    message: str | None = None,
    details: Sequence[ErrorDetail] = (),
    headers: dict[str, str] | None = None,
) -> Response:
    body = orjson.dumps(error_body(code, current_request_id(), message, details))
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def field_path(loc: Sequence[Any]) -> str:
    """``("body", "marks", 3, "mark")`` -> ``marks[3].mark`` as API.md writes it."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def _is_malformed_body(errors: Sequence[dict[str, Any]]) -> bool:
    return any(err.get("type") in ("json_invalid", "json_type") for err in errors)


def _is_malformed_id(errors: Sequence[dict[str, Any]]) -> bool:
    # An id in the path that is no UUID names nothing: 404 as for an unknown id,
    # the same answer on every service (API.md: ids are UUID strings).
    return any(
        err.get("loc", ("",))[0] == "path" and str(err.get("type", "")).startswith("uuid_")
        for err in errors
    )


def _is_query_problem(errors: Sequence[dict[str, Any]]) -> bool:
    return bool(errors) and all(err.get("loc", ("",))[0] == "query" for err in errors)


def _detail(err: dict[str, Any]) -> ErrorDetail:
    field = field_path(err.get("loc", ()))
    kind = str(err.get("type", ""))
    message = str(err.get("msg", "invalid value"))
    if kind == "too_long":
        # A list over its model's max_length: one code and message for every such
        # limit, e.g. the 5000 entries of a marks batch (API.md).
        ctx = err.get("ctx") or {}
        message = f"at most {ctx.get('max_length')} entries a call"
        if ctx.get("actual_length") is not None:
            message += f", got {ctx['actual_length']}"
        return ErrorDetail(field, DetailCode.TOO_MANY_ENTRIES, message)
    code = DetailCode.__members__.get(kind.upper())
    if code not in PARSING_CODES:
        # A pydantic error type the catalog does not list (a rare one, or one a
        # new pydantic adds): still a catalogued code, with pydantic's message.
        # Only parsing codes qualify, so no type can pass for a domain rule.
        code = DetailCode.INVALID_VALUE
    return ErrorDetail(field, code, message)


def validation_details(errors: Sequence[dict[str, Any]]) -> list[ErrorDetail]:
    """One detail per pydantic error, its type mapped onto the detail catalog."""
    return [_detail(err) for err in errors]


async def _service_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return envelope_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if _is_malformed_id(errors):
        return envelope_response(404, ErrorCode.NOT_FOUND)
    details = validation_details(errors)
    if _is_malformed_body(errors):
        return envelope_response(400, ErrorCode.BAD_REQUEST, "The body is not valid JSON.", details)
    if _is_query_problem(errors):
        return envelope_response(
            400, ErrorCode.BAD_REQUEST, "A query parameter is not valid.", details
        )
    return envelope_response(422, ErrorCode.VALIDATION_FAILED, None, details)


def _allowed_methods(request: Request) -> str:
    """Every method of the request path's resource, for ``Allow`` (RFC 9110).

    Starlette names only the methods of the first route whose path matches, so a
    path with a GET and a POST route answered ``Allow: GET`` alone. Of the routes
    that match, those with the fewest path parameters name the resource: a
    literal segment beats a parameter (``/results/generate`` is the generate
    action, though ``/results/{student_number}`` matches it too).
    """
    matched: list[tuple[int, set[str]]] = []
    for route in routing.iter_route_contexts(request.app.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            matched.append((len(route.param_convertors), set(route.methods or ())))
    fewest = min((params for params, _ in matched), default=0)
    methods = set().union(*(names for params, names in matched if params == fewest))
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_TO_CODE.get(exc.status_code)
    if code is None:
        code = ErrorCode.INTERNAL if exc.status_code >= 500 else ErrorCode.BAD_REQUEST
    headers = dict(exc.headers or {})
    if exc.status_code == 405 and (allowed := _allowed_methods(request)):
        headers["Allow"] = allowed
    return envelope_response(exc.status_code, code, None, (), headers or None)


DATABASE_RETRY_AFTER_SECONDS = 5


def unexpected_error_response(method: str, path: str, exc: BaseException) -> Response:
    """The answer (and the log line) for an exception no handler mapped."""
    if database_unavailable(exc):
        # The database is down, restarting or full ("too many clients"): the request
        # was fine, so 503 with Retry-After as for any upstream, not a 500 that says
        # our code is broken (and pages someone for it).
        log.warning("database unavailable on %s %s: %s", method, path, type(exc).__name__)
        return envelope_response(
            503,
            ErrorCode.UPSTREAM_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    log.error(
        "unhandled error on %s %s", method, path, exc_info=(type(exc), exc, exc.__traceback__)
    )
    return envelope_response(500, ErrorCode.INTERNAL)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    return unexpected_error_response(request.method, request.url.path, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
