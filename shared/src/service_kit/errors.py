"""The error catalog, typed domain errors and the envelope.

Every code of API.md lives here once, with its HTTP status and a default
message for a person; every detail code lives in
:mod:`service_kit.detail_codes`. Services raise :class:`ServiceError`
subclasses with a code; :mod:`service_kit.handlers` maps them (and every
framework error) to the envelope, so no service can answer a bare 500 or a
framework-shaped body. ``docs/errors.md`` is generated from both catalogs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from service_kit.detail_codes import DETAIL_CATALOG, DetailCode, detail_catalog_markdown

__all__ = [
    "CATALOG",
    "DETAIL_CATALOG",
    "CatalogEntry",
    "DetailCode",
    "ErrorCode",
    "ErrorDetail",
    "ServiceError",
    "catalog_markdown",
    "error_body",
]


class ErrorCode(StrEnum):
    BAD_REQUEST = "BAD_REQUEST"
    AUTH_TOKEN_MISSING = "AUTH_TOKEN_MISSING"
    AUTH_TOKEN_INVALID = "AUTH_TOKEN_INVALID"
    AUTH_TOKEN_EXPIRED = "AUTH_TOKEN_EXPIRED"
    AUTH_INVALID_CREDENTIALS = "AUTH_INVALID_CREDENTIALS"
    AUTH_REFRESH_INVALID = "AUTH_REFRESH_INVALID"
    AUTH_REFRESH_REUSED = "AUTH_REFRESH_REUSED"
    FORBIDDEN = "FORBIDDEN"
    NOT_FOUND = "NOT_FOUND"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    EXAM_CODE_TAKEN = "EXAM_CODE_TAKEN"
    USER_EMAIL_TAKEN = "USER_EMAIL_TAKEN"
    STUDENT_NUMBER_TAKEN = "STUDENT_NUMBER_TAKEN"
    RESULTS_STALE = "RESULTS_STALE"
    EXAM_PUBLISHED = "EXAM_PUBLISHED"
    CONFLICT = "CONFLICT"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    URI_TOO_LONG = "URI_TOO_LONG"
    HEADER_FIELDS_TOO_LARGE = "HEADER_FIELDS_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    VALIDATION_FAILED = "VALIDATION_FAILED"
    RATE_LIMITED = "RATE_LIMITED"
    AUTH_RATE_LIMITED = "AUTH_RATE_LIMITED"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    status: int
    message: str


CATALOG: Mapping[ErrorCode, CatalogEntry] = {
    ErrorCode.BAD_REQUEST: CatalogEntry(400, "The request is malformed."),
    ErrorCode.AUTH_TOKEN_MISSING: CatalogEntry(401, "Sign in to continue."),
    ErrorCode.AUTH_TOKEN_INVALID: CatalogEntry(401, "The access token is not valid."),
    ErrorCode.AUTH_TOKEN_EXPIRED: CatalogEntry(401, "The access token has expired."),
    ErrorCode.AUTH_INVALID_CREDENTIALS: CatalogEntry(401, "The email or password is wrong."),
    ErrorCode.AUTH_REFRESH_INVALID: CatalogEntry(401, "The refresh token is not valid."),
    ErrorCode.AUTH_REFRESH_REUSED: CatalogEntry(
        401, "The refresh token was already used; every session of it has been signed out."
    ),
    ErrorCode.FORBIDDEN: CatalogEntry(403, "You are not allowed to do this."),
    ErrorCode.NOT_FOUND: CatalogEntry(404, "Not found."),
    # API.md lists no 405 code; the router still must not leak Starlette's shape.
    ErrorCode.METHOD_NOT_ALLOWED: CatalogEntry(405, "This method is not allowed here."),
    ErrorCode.EXAM_CODE_TAKEN: CatalogEntry(409, "An exam with this code already exists."),
    ErrorCode.USER_EMAIL_TAKEN: CatalogEntry(409, "A user with this email already exists."),
    ErrorCode.STUDENT_NUMBER_TAKEN: CatalogEntry(409, "This student number is already taken."),
    ErrorCode.RESULTS_STALE: CatalogEntry(409, "Results do not reflect the latest marks."),
    ErrorCode.EXAM_PUBLISHED: CatalogEntry(409, "The exam is already published."),
    ErrorCode.CONFLICT: CatalogEntry(409, "The request conflicts with the current state."),
    ErrorCode.PAYLOAD_TOO_LARGE: CatalogEntry(413, "The request body is too large."),
    # API.md lists no 414 or 431 code: the server answers these while parsing a request
    # (service_kit.http_protocol), before any route is known.
    ErrorCode.URI_TOO_LONG: CatalogEntry(414, "The URL is too long."),
    ErrorCode.HEADER_FIELDS_TOO_LARGE: CatalogEntry(431, "The request headers are too large."),
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: CatalogEntry(415, "This content type is not supported."),
    ErrorCode.VALIDATION_FAILED: CatalogEntry(422, "Some fields are not valid."),
    ErrorCode.RATE_LIMITED: CatalogEntry(429, "Too many requests; try again later."),
    ErrorCode.AUTH_RATE_LIMITED: CatalogEntry(429, "Too many sign-in attempts; try again later."),
    ErrorCode.UPSTREAM_UNAVAILABLE: CatalogEntry(
        503, "The service is unavailable right now; try again shortly."
    ),
    ErrorCode.INTERNAL: CatalogEntry(500, "Something went wrong on our side."),
}


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One problem of a request: ``field`` is a path such as ``marks[3].mark``."""

    field: str
    code: DetailCode
    message: str

    def __post_init__(self) -> None:
        # Typed as DetailCode, checked here too: a stray string from untyped code
        # fails where it is made, not as an unannounced code in a client's hands.
        object.__setattr__(self, "code", DetailCode(self.code))

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code.value, "message": self.message}


class ServiceError(Exception):
    """A failure with a catalog code; mapped to the envelope in one place."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(
        self,
        message: str | None = None,
        *,
        code: ErrorCode | None = None,
        details: Sequence[ErrorDetail] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        self.message = message or CATALOG[self.code].message
        self.details = tuple(details)
        self.headers = dict(headers or {})
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return CATALOG[self.code].status


class BadRequest(ServiceError):
    code = ErrorCode.BAD_REQUEST


class Unauthorized(ServiceError):
    """401; always carries ``WWW-Authenticate: Bearer`` as RFC 6750 asks."""

    code = ErrorCode.AUTH_TOKEN_INVALID

    def __init__(self, message: str | None = None, *, code: ErrorCode | None = None) -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    code = ErrorCode.FORBIDDEN


class NotFound(ServiceError):
    code = ErrorCode.NOT_FOUND


class Conflict(ServiceError):
    code = ErrorCode.CONFLICT


class ValidationFailed(ServiceError):
    code = ErrorCode.VALIDATION_FAILED


class UnsupportedMediaType(ServiceError):
    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE


class RateLimited(ServiceError):
    """429 with ``Retry-After`` in whole seconds."""

    code = ErrorCode.RATE_LIMITED

    def __init__(
        self, retry_after_seconds: int, *, code: ErrorCode | None = None, message: str | None = None
    ) -> None:
        super().__init__(
            message, code=code, headers={"Retry-After": str(max(1, int(retry_after_seconds)))}
        )


class UpstreamUnavailable(ServiceError):
    code = ErrorCode.UPSTREAM_UNAVAILABLE

    def __init__(self, message: str | None = None, *, retry_after_seconds: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_seconds)})


def error_body(
    code: ErrorCode,
    request_id: str,
    message: str | None = None,
    details: Sequence[ErrorDetail] = (),
) -> dict[str, Any]:
    """The envelope of API.md: ``{"error": {code, message, request_id, details?}}``."""
    error: dict[str, Any] = {
        "code": code.value,
        "message": message or CATALOG[code].message,
        "request_id": request_id,
    }
    if details:
        error["details"] = [d.as_dict() for d in details]
    return {"error": error}


def catalog_markdown() -> str:
    """docs/errors.md, generated so the docs cannot drift from the code."""
    lines = [
        "# Error codes",
        "",
        "Generated from `service_kit.errors.CATALOG` and `service_kit.detail_codes.DETAIL_CATALOG`",
        "by `make docs`; do not edit.",
        "",
        "## Error codes (`error.code`)",
        "",
        "| status | code | default message |",
        "|---|---|---|",
    ]
    for code, entry in sorted(CATALOG.items(), key=lambda kv: (kv[1].status, kv[0].value)):
        lines.append(f"| {entry.status} | `{code.value}` | {entry.message} |")
    lines += [
        "",
        "## Detail codes (`error.details[].code`)",
        "",
        "One problem of one field (`field` is a path such as `marks[3].mark`). Codes of the",
        "area `request` come from parsing the request and can appear on any call.",
        "",
        *detail_catalog_markdown(),
    ]
    return "\n".join(lines) + "\n"
