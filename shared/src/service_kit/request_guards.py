"""Checks every kit-built app runs on a request before a route sees it.

- Text Postgres cannot hold: NUL (U+0000) is refused by every text column, and
  a lone surrogate (JSON allows ``"\\ud800"``) cannot be encoded to UTF-8. Either
  reaching a query was a 500; here it is 400 ``BAD_REQUEST`` in the path or query
  (:class:`ForbiddenCharacterMiddleware`, before routing) and 422
  ``VALIDATION_FAILED`` with a ``FORBIDDEN_CHARACTER`` detail per field in a JSON
  body (:func:`check_json_body`). The body is checked as decoded JSON, not per
  model, so every string, nested or not, of any route present or future is covered.
- A route that takes a JSON body (a pydantic body parameter) refuses any other
  content type with 415 ``UNSUPPORTED_MEDIA_TYPE``; without the check FastAPI
  hands the raw bytes to the model and answers a puzzling 422. Routes without a
  body parameter (raw CSV uploads read from the request) and form routes are
  left alone.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from fastapi.params import Form
from starlette.types import ASGIApp, Receive, Scope, Send

from service_kit.detail_codes import DetailCode
from service_kit.errors import ErrorCode, ErrorDetail, UnsupportedMediaType, ValidationFailed
from service_kit.handlers import envelope_response, field_path

_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")
_FORBIDDEN_MESSAGE = "contains a character that cannot be stored (NUL or a lone surrogate)"


def _has_forbidden(text: str) -> bool:
    return _FORBIDDEN.search(text) is not None


def _query_has_nul(query: bytes) -> bool:
    # Only "%00" decodes to NUL (the hex digits have no case), so the raw bytes
    # tell without decoding the query string of every request.
    return b"%00" in query or b"\x00" in query


class ForbiddenCharacterMiddleware:
    """400 ``BAD_REQUEST`` for NUL (also as ``%00``) in the path or the query string."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            _has_forbidden(scope["path"]) or _query_has_nul(scope["query_string"])
        ):
            # The server has percent-decoded the path; the query is checked here
            # since every parameter parser downstream would let %00 through.
            response = envelope_response(
                400,
                ErrorCode.BAD_REQUEST,
                "The path or a query parameter contains a NUL character.",
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` (any parameters, e.g. a charset) or ``application/*+json``."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _forbidden_strings(value: Any, loc: tuple[str | int, ...]) -> list[tuple[str | int, ...]]:
    """Paths (``("body", "marks", 3, "reason")``) of the strings holding a forbidden character."""
    if isinstance(value, str):
        return [loc] if _has_forbidden(value) else []
    found: list[tuple[str | int, ...]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if _has_forbidden(key):
                # The key itself cannot be echoed (a surrogate cannot even be
                # serialized), so the object holding it is named.
                found.append(loc)
            else:
                found += _forbidden_strings(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _forbidden_strings(item, (*loc, index))
    return found


async def check_json_body(request: Request) -> None:
    """App-wide dependency: 415 for a non-JSON body, 422 for forbidden characters in it.

    It runs after FastAPI has read and decoded the body (malformed JSON is 400
    already) and before the models validate it; ``request.json()`` returns the
    document FastAPI decoded, so nothing is parsed twice.
    """
    body_field = getattr(request.scope.get("route"), "body_field", None)
    if body_field is None or isinstance(body_field.field_info, Form):
        return
    if not await request.body():
        # No body where it is optional: the model's own rules decide.
        return
    if not is_json_media_type(request.headers.get("content-type", "")):
        raise UnsupportedMediaType("This call takes a JSON body (Content-Type: application/json).")
    paths = _forbidden_strings(await request.json(), ("body",))
    if paths:
        raise ValidationFailed(
            details=[
                ErrorDetail(field_path(loc), DetailCode.FORBIDDEN_CHARACTER, _FORBIDDEN_MESSAGE)
                for loc in dict.fromkeys(paths)
            ]
        )
