"""Cursor pagination of API.md for every list: ``?limit=`` (1..500, default 50), ``?cursor=``.

A route takes ``limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None`` and a
codec (``cursors: Cursors``), scopes it to its list and filters, decodes the
cursor, fetches ``limit + 1`` rows after it and answers
``Page(items=..., next_cursor=...)`` with :func:`page_of`::

    pages = cursors.scoped("exams")
    rows = await list_exams(session, after=pages.decode(cursor, parse_key), limit=limit + 1)
    page, next_cursor = page_of(rows, limit, sort_key, pages)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel, Field

from service_kit.cursors import MAX_CURSOR_LENGTH, CursorCodec, KeyPart, ListCursor
from service_kit.settings import KitSettings

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1 to {MAX_LIMIT}.")]
# Longer than any cursor we hand out: a longer one is refused as a bad query
# parameter (400) before anything decodes it.
Cursor = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_LENGTH, description="`next_cursor` of the previous page."),
]


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    items: list[T] = Field(description="The items of this page.")
    next_cursor: str | None = Field(
        description="Pass as `?cursor=` for the next page; null at the end."
    )


async def cursor_codec(request: Request) -> CursorCodec:
    """The codec under the app's ``CURSOR_SECRET`` (``create_app`` keeps the settings on
    ``app.state``). ``async``: a plain ``def`` dependency costs a threadpool handoff."""
    settings: KitSettings = request.app.state.settings
    return CursorCodec(settings.cursor_secret.get_secret_value())


Cursors = Annotated[CursorCodec, Depends(cursor_codec)]


def page_of(
    rows: Sequence[T], limit: int, key: Callable[[T], Sequence[KeyPart]], cursors: ListCursor
) -> tuple[Sequence[T], str | None]:
    """Splits ``limit + 1`` fetched rows into the page and the cursor of the next one."""
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    return page, cursors.encode(key(page[-1]))
