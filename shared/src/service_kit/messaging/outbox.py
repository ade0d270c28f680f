"""Writing events to the transactional outbox.

:func:`add_event` inserts the event in the caller's transaction, so the event
exists if and only if the business change committed. The
:class:`~service_kit.messaging.relay.OutboxRelay` publishes it afterwards.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from service_kit.context import current_request_id
from service_kit.messaging.envelope import (
    EVENT_TYPE_PATTERN,
    HEADER_REQUEST_ID,
    json_safe,
    new_message_id,
    trace_headers,
    utc_now,
)
from service_kit.messaging.tables import checked_schema, tables_for

_EVENT_TYPE = re.compile(EVENT_TYPE_PATTERN)


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel that wakes the relay of ``schema``."""
    return f"{checked_schema(schema)}_outbox"


async def add_event(
    session: AsyncSession,
    event_type: str,
    data: Mapping[str, Any] | BaseModel,
    *,
    schema: str,
    producer: str,
    version: int = 1,
    routing_key: str | None = None,
) -> uuid.UUID:
    """Writes an event to ``schema``'s outbox in the session's transaction; returns its id.

    The request id and W3C trace context of the current request are captured
    now, so the consumer's logs and spans join the request that caused them.
    The routing key defaults to the event type.
    """
    if not _EVENT_TYPE.match(event_type):
        raise ValueError(f"event type {event_type!r} must look like 'user.created'")
    if version < 1:
        raise ValueError("event version starts at 1")
    headers: dict[str, str] = dict(trace_headers())
    request_id = current_request_id()
    if request_id != "-":
        headers[HEADER_REQUEST_ID] = request_id
    message_id = new_message_id()
    outbox = tables_for(schema).outbox
    await session.execute(
        insert(outbox).values(
            id=message_id,
            type=event_type,
            version=version,
            routing_key=routing_key or event_type,
            producer=producer,
            payload=json_safe(data),
            headers=headers,
            occurred_at=utc_now(),
        )
    )
    # Delivered only if the transaction commits, and once per transaction
    # however many events it wrote (Postgres folds identical notifications).
    await session.execute(
        text("SELECT pg_notify(:channel, '')"), {"channel": notify_channel(schema)}
    )
    return message_id


async def unsent_count(session: AsyncSession, *, schema: str) -> int:
    outbox = tables_for(schema).outbox
    count = await session.scalar(
        select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
    )
    return int(count or 0)


async def purge_sent_events(session: AsyncSession, *, schema: str, older_than: timedelta) -> int:
    """Deletes rows sent longer ago than ``older_than``; returns how many."""
    outbox = tables_for(schema).outbox
    result = await session.execute(
        delete(outbox).where(
            outbox.c.sent_at.is_not(None),
            outbox.c.sent_at < func.now() - older_than,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
