"""The queries of email and webhook delivery (``deliveries``, ``delivery_attempts``).

A delivery message names a batch of notifications; :func:`pending_deliveries`
loads those still pending on a channel with what sending needs. Outcomes are
written by :func:`record_attempts` right after their sends, in short
transactions of their own (several sends grouped in one commit), not in the
message's transaction: a later failure in the batch (which rolls that one
back so the broker retries the message) must not undo the record of an email
already sent, or the retry would send it again.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from service_kit.db import Database
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from notifier_service.domain.kinds import NotificationKind

Channel = Literal["email", "webhook"]
AttemptOutcome = Literal["sent", "transient", "permanent"]

_STATUS_AFTER: dict[AttemptOutcome, str] = {
    "sent": "sent",
    "transient": "pending",
    "permanent": "failed",
}


@dataclass(frozen=True, slots=True)
class PendingDelivery:
    """A pending delivery, its notification, and its recipient from the users read model."""

    notification_id: uuid.UUID
    user_id: uuid.UUID
    kind: NotificationKind
    title: str
    body: str
    data: dict[str, Any]
    facts: dict[str, Any]
    created_at: datetime
    read_at: datetime | None
    attempts: int
    email: str | None
    """None when the user is not in the read model."""
    full_name: str | None
    active: bool | None


async def pending_deliveries(
    session: AsyncSession, channel: Channel, notification_ids: Sequence[uuid.UUID]
) -> list[PendingDelivery]:
    """The deliveries on ``channel`` of these notifications still pending, in the given order."""
    if not notification_ids:
        return []
    result = await session.execute(
        text(
            "SELECT n.id, n.user_id, n.kind, n.title, n.body, n.data, n.facts, n.created_at, "
            "n.read_at, d.attempts, u.email, u.full_name, u.active "
            "FROM notifier.deliveries d "
            "JOIN notifier.notifications n ON n.id = d.notification_id "
            "LEFT JOIN notifier.users u ON u.id = n.user_id "
            "WHERE d.channel = :channel AND d.status = 'pending' "
            "AND d.notification_id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"channel": channel, "ids": list(notification_ids)},
    )
    found = {
        row.id: PendingDelivery(
            notification_id=row.id,
            user_id=row.user_id,
            kind=NotificationKind(row.kind),
            title=row.title,
            body=row.body,
            data=dict(row.data),
            facts=dict(row.facts),
            created_at=row.created_at,
            read_at=row.read_at,
            attempts=row.attempts,
            email=row.email,
            full_name=row.full_name,
            active=row.active,
        )
        for row in result
    }
    return [found[i] for i in dict.fromkeys(notification_ids) if i in found]


_RECORD_MANY = text(
    "WITH sent AS ("
    " SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:statuses AS text[]),"
    " CAST(:outcomes AS text[]), CAST(:details AS text[])) AS a(id, status, outcome, detail)),"
    " updated AS ("
    " UPDATE notifier.deliveries d SET status = sent.status, attempts = d.attempts + 1,"
    " last_error = sent.detail, updated_at = now(),"
    " sent_at = CASE WHEN sent.status = 'sent' THEN now() ELSE d.sent_at END"
    " FROM sent WHERE d.notification_id = sent.id AND d.channel = :channel"
    " AND d.status = 'pending'"
    " RETURNING d.notification_id, d.attempts, sent.outcome, sent.detail)"
    " INSERT INTO notifier.delivery_attempts (notification_id, channel, attempt, outcome, detail)"
    " SELECT notification_id, :channel, attempts, outcome, detail FROM updated"
    " RETURNING notification_id, attempt"
)


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one send."""

    notification_id: uuid.UUID
    outcome: AttemptOutcome
    detail: str | None = None


async def record_attempts(
    db: Database, channel: Channel, attempts: Sequence[Attempt]
) -> dict[uuid.UUID, int]:
    """Records the attempts of several sends and moves each delivery on (sent, failed,
    or still pending), in one transaction of their own (one statement, one commit).

    Only a pending delivery moves; returns the attempt number of each one that
    was still pending (a delivery already sent or failed is left alone)."""
    if not attempts:
        return {}
    async with db.transaction() as session:
        # Not waiting for the WAL flush: this commit is on every send's path, and
        # waiting for the disk cost more than the send. What it risks is narrow:
        # if Postgres itself crashes within the next few hundred milliseconds,
        # these records are lost and the emails are sent again on redelivery, with
        # the same Message-ID (ADR 0018). A worker crash loses nothing committed.
        await session.execute(text("SET LOCAL synchronous_commit TO OFF"))
        result = await session.execute(
            _RECORD_MANY,
            {
                "ids": [a.notification_id for a in attempts],
                "statuses": [_STATUS_AFTER[a.outcome] for a in attempts],
                "outcomes": [a.outcome for a in attempts],
                "details": [a.detail for a in attempts],
                "channel": channel,
            },
        )
        return {row[0]: int(row[1]) for row in result}


async def mark_dead_lettered(
    db: Database, channel: Channel, notification_ids: Sequence[uuid.UUID], detail: str
) -> list[uuid.UUID]:
    """Moves these still-pending deliveries to ``dead_lettered``; returns the ones moved."""
    if not notification_ids:
        return []
    async with db.transaction() as session:
        result = await session.execute(
            text(
                "UPDATE notifier.deliveries SET status = 'dead_lettered', last_error = :detail, "
                "updated_at = now() "
                "WHERE channel = :channel AND status = 'pending' "
                "AND notification_id = ANY(CAST(:ids AS uuid[])) "
                "RETURNING notification_id"
            ),
            {"channel": channel, "ids": list(notification_ids), "detail": detail},
        )
        return [row[0] for row in result]
