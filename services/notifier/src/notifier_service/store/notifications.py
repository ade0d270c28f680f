"""Notifications: the set-based insert of a fan-out, the inbox's reads and writes, and
what the live stream fetches."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from notifier_service.store.tables import notifications


@dataclass(frozen=True, slots=True)
class NotificationRow:
    """A stored notification (API.md's Notification, with its owner and ``seq``)."""

    id: uuid.UUID
    seq: int
    user_id: uuid.UUID
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewRow:
    """One notification to insert."""

    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    cause: str
    title: str
    body: str
    data: dict[str, Any]
    facts: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Inserted:
    id: uuid.UUID
    seq: int
    user_id: uuid.UUID


_COLUMNS = (
    notifications.c.id,
    notifications.c.seq,
    notifications.c.user_id,
    notifications.c.kind,
    notifications.c.title,
    notifications.c.body,
    notifications.c.data,
    notifications.c.created_at,
    notifications.c.read_at,
)


def _row(row: Any) -> NotificationRow:
    return NotificationRow(
        row.id,
        row.seq,
        row.user_id,
        row.kind,
        row.title,
        row.body,
        row.data,
        row.created_at,
        row.read_at,
    )


def _json_texts(values: Sequence[dict[str, Any]]) -> list[str]:
    return [orjson.dumps(v).decode() for v in values]


# One statement for a whole chunk of recipients, whatever its size: the
# arrays travel as eight parameters. ON CONFLICT drops the (user, cause) pairs
# that exist, which is what makes a redelivered or replayed cause notify once.
_INSERT = text(
    """
    INSERT INTO notifier.notifications (id, user_id, kind, cause, title, body, data, facts)
    SELECT n.id, n.user_id, n.kind, n.cause, n.title, n.body, n.data::jsonb, n.facts::jsonb
    FROM unnest(
        CAST(:ids AS uuid[]), CAST(:user_ids AS uuid[]), CAST(:kinds AS text[]),
        CAST(:causes AS text[]), CAST(:titles AS text[]), CAST(:bodies AS text[]),
        CAST(:datas AS text[]), CAST(:facts AS text[])
    ) AS n(id, user_id, kind, cause, title, body, data, facts)
    ON CONFLICT (user_id, cause) DO NOTHING
    RETURNING id, seq, user_id
    """
)


async def insert_new(session: AsyncSession, rows: Sequence[NewRow]) -> list[Inserted]:
    """Inserts the rows whose (user, cause) is new; returns those, in ``seq`` order."""
    if not rows:
        return []
    result = await session.execute(
        _INSERT,
        {
            "ids": [r.id for r in rows],
            "user_ids": [r.user_id for r in rows],
            "kinds": [r.kind for r in rows],
            "causes": [r.cause for r in rows],
            "titles": [r.title for r in rows],
            "bodies": [r.body for r in rows],
            "datas": _json_texts([r.data for r in rows]),
            "facts": _json_texts([r.facts for r in rows]),
        },
    )
    return sorted((Inserted(r.id, r.seq, r.user_id) for r in result), key=lambda i: i.seq)


async def add_pending_deliveries(
    session: AsyncSession, channel: str, notification_ids: Sequence[uuid.UUID]
) -> None:
    if not notification_ids:
        return
    await session.execute(
        text(
            "INSERT INTO notifier.deliveries (notification_id, channel) "
            "SELECT unnest(CAST(:ids AS uuid[])), :channel"
        ),
        {"ids": list(notification_ids), "channel": channel},
    )


async def list_for_user(
    session: AsyncSession,
    user_id: uuid.UUID,
    *,
    unread: bool | None,
    before_seq: int | None,
    limit: int,
) -> list[NotificationRow]:
    """The user's notifications, newest first (``seq`` descending), after a cursor."""
    query = select(*_COLUMNS).where(notifications.c.user_id == user_id)
    if unread is True:
        query = query.where(notifications.c.read_at.is_(None))
    elif unread is False:
        query = query.where(notifications.c.read_at.is_not(None))
    if before_seq is not None:
        query = query.where(notifications.c.seq < before_seq)
    result = await session.execute(query.order_by(notifications.c.seq.desc()).limit(limit))
    return [_row(r) for r in result]


async def unread_count(session: AsyncSession, user_id: uuid.UUID) -> int:
    return (await unread_counts(session, [user_id]))[user_id]


async def unread_counts(
    session: AsyncSession, user_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int]:
    if not user_ids:
        return {}
    result = await session.execute(
        select(notifications.c.user_id, func.count())
        .where(notifications.c.user_id.in_(list(user_ids)), notifications.c.read_at.is_(None))
        .group_by(notifications.c.user_id)
    )
    counts = {uid: 0 for uid in user_ids}
    counts.update({row[0]: int(row[1]) for row in result})
    return counts


async def mark_read(session: AsyncSession, user_id: uuid.UUID, notification_id: uuid.UUID) -> bool:
    """Marks the user's notification read (idempotent); False if it is not theirs or unknown."""
    result = await session.execute(
        update(notifications)
        .where(notifications.c.id == notification_id, notifications.c.user_id == user_id)
        .values(read_at=func.coalesce(notifications.c.read_at, func.now()))
        .returning(notifications.c.id)
    )
    return result.scalar_one_or_none() is not None


async def mark_all_read(session: AsyncSession, user_id: uuid.UUID) -> int:
    result = await session.execute(
        update(notifications)
        .where(notifications.c.user_id == user_id, notifications.c.read_at.is_(None))
        .values(read_at=func.now())
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def in_ranges_for_users(
    session: AsyncSession, ranges: Sequence[tuple[int, int]], user_ids: Sequence[uuid.UUID]
) -> list[NotificationRow]:
    """The notifications with ``seq`` in any of ``ranges`` (inclusive) that belong to
    ``user_ids``: what a replica's open streams must be sent after a NOTIFY."""
    if not ranges or not user_ids:
        return []
    in_range = [notifications.c.seq.between(lo, hi) for lo, hi in ranges]
    query = (
        select(*_COLUMNS)
        .where(or_(*in_range), notifications.c.user_id.in_(list(user_ids)))
        .order_by(notifications.c.seq)
    )
    return [_row(r) for r in await session.execute(query)]


async def after_seq(
    session: AsyncSession, user_id: uuid.UUID, seq: int, *, limit: int
) -> list[NotificationRow]:
    """The user's notifications after ``seq``, oldest first: a stream's resume."""
    query = (
        select(*_COLUMNS)
        .where(and_(notifications.c.user_id == user_id, notifications.c.seq > seq))
        .order_by(notifications.c.seq)
        .limit(limit)
    )
    return [_row(r) for r in await session.execute(query)]


async def latest_seq(session: AsyncSession, user_id: uuid.UUID) -> int:
    """The position of the user's newest notification (0 if none)."""
    result = await session.execute(
        select(func.coalesce(func.max(notifications.c.seq), 0)).where(
            notifications.c.user_id == user_id
        )
    )
    return int(result.scalar_one())
