"""``/api/v1/notifications``: the caller's inbox, marking read, and email preferences."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from service_kit.pagination import DEFAULT_LIMIT, Cursor, Cursors, Limit, page_of
from service_kit.security import CurrentUser

from notifier_service.api.deps import DB
from notifier_service.api.models import (
    NotificationOut,
    NotificationPage,
    PreferencesIn,
    PreferencesOut,
)
from notifier_service.store.notifications import NotificationRow
from notifier_service.usecases import inbox

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


def _cursor(values: list[object]) -> int:
    (seq,) = values
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise ValueError("not a position")
    return seq


def _key(row: NotificationRow) -> tuple[int]:
    return (row.seq,)


@router.get("", response_model=NotificationPage)
async def get_notifications(
    caller: CurrentUser,
    db: DB,
    cursors: Cursors,
    unread: Annotated[
        bool | None, Query(description="true: unread only; false: read only; absent: all.")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> NotificationPage:
    """The caller's notifications, newest first, and their unread count."""
    pages = cursors.scoped("notifications", str(caller.user_id), unread)
    before = pages.decode(cursor, _cursor)
    found = await inbox.inbox_page(
        db, caller.user_id, unread=unread, before_seq=before, limit=limit + 1
    )
    page, next_cursor = page_of(found.rows, limit, _key, pages)
    return NotificationPage(
        items=[NotificationOut.of(r) for r in page],
        next_cursor=next_cursor,
        unread_count=found.unread_count,
    )


@router.post("/read-all", status_code=status.HTTP_204_NO_CONTENT)
async def post_read_all(caller: CurrentUser, db: DB) -> Response:
    await inbox.mark_all_read(db, caller.user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/preferences", response_model=PreferencesOut)
async def get_preferences(caller: CurrentUser, db: DB) -> PreferencesOut:
    return PreferencesOut(email=await inbox.email_preference(db, caller.user_id))


@router.put("/preferences", response_model=PreferencesOut)
async def put_preferences(body: PreferencesIn, caller: CurrentUser, db: DB) -> PreferencesOut:
    return PreferencesOut(email=await inbox.set_email_preference(db, caller.user_id, body.email))


@router.post("/{notification_id}/read", status_code=status.HTTP_204_NO_CONTENT)
async def post_read(notification_id: uuid.UUID, caller: CurrentUser, db: DB) -> Response:
    """Marks the caller's notification read (again is fine); 404 if it is not theirs."""
    await inbox.mark_read(db, caller.user_id, notification_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
