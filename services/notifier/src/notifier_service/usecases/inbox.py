"""The caller's inbox: read it, mark one or all read, choose about email.

Reads and writes go to the primary: a user who marks a notification read and
lists again must see it read (never their own write stale). A change of the
unread count is signalled in the same transaction, so the user's other open
streams (on any replica) get their new ``unread_count``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from service_kit.db import Database
from service_kit.errors import NotFound

from notifier_service.store import notifications as store
from notifier_service.store import users as users_store
from notifier_service.streams.signals import announce_unread_changed


@dataclass(frozen=True, slots=True)
class InboxPage:
    rows: list[store.NotificationRow]
    unread_count: int


async def inbox_page(
    db: Database, user_id: uuid.UUID, *, unread: bool | None, before_seq: int | None, limit: int
) -> InboxPage:
    async with db.read_session(fresh=True) as session:
        rows = await store.list_for_user(
            session, user_id, unread=unread, before_seq=before_seq, limit=limit
        )
        count = await store.unread_count(session, user_id)
    return InboxPage(rows, count)


async def mark_read(db: Database, user_id: uuid.UUID, notification_id: uuid.UUID) -> None:
    """404 for another user's notification, as for one that does not exist."""
    async with db.transaction() as session:
        if not await store.mark_read(session, user_id, notification_id):
            raise NotFound("No such notification.")
        await announce_unread_changed(session, user_id)


async def mark_all_read(db: Database, user_id: uuid.UUID) -> None:
    async with db.transaction() as session:
        if await store.mark_all_read(session, user_id):
            await announce_unread_changed(session, user_id)


async def email_preference(db: Database, user_id: uuid.UUID) -> bool:
    async with db.read_session(fresh=True) as session:
        return await users_store.email_preference(session, user_id)


async def set_email_preference(db: Database, user_id: uuid.UUID, email: bool) -> bool:
    async with db.transaction() as session:
        await users_store.set_email_preference(session, user_id, email)
    return email
