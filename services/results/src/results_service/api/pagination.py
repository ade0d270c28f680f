"""Cursor pagination of API.md: ``?limit=`` (1..500, default 50), ``?cursor=``.

A cursor is the sort key of the last item of a page, as URL-safe base64 of a
JSON array; the next page starts strictly after it (keyset pagination), so
pages stay fast and stable while rows are added. It is opaque to clients; a
cursor that does not decode to the expected shape is a 400.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Generic, TypeVar

import orjson
from fastapi import Query
from pydantic import BaseModel, Field
from service_kit.errors import BadRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

T = TypeVar("T")
K = TypeVar("K")

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1 to {MAX_LIMIT}.")]
Cursor = Annotated[
    str | None,
    Query(max_length=1024, description="`next_cursor` of the previous page."),
]


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T] = Field(description="The items of this page.")
    next_cursor: str | None = Field(
        description="Pass as `?cursor=` for the next page; null at the end."
    )


def encode_cursor(key: Sequence[str | int]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str | None, parse: Callable[[list[object]], K]) -> K | None:
    """The key a cursor holds, checked by ``parse`` (which raises on a wrong shape)."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
        if not isinstance(values, list):
            raise ValueError("not a list")
        return parse(values)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError, IndexError) as exc:
        raise BadRequest("The cursor is not valid.") from exc


def page_of(
    rows: Sequence[T], limit: int, key: Callable[[T], Sequence[str | int]]
) -> tuple[Sequence[T], str | None]:
    """Splits ``limit + 1`` fetched rows into the page and the cursor of the next one."""
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    return page, encode_cursor(key(page[-1]))
