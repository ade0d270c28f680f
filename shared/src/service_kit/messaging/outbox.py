"""Writing events to the transactional outbox.

:func:`add_event` inserts the event in the caller's transaction, so the event
exists if and only if the business change committed. The
:class:`~service_kit.messaging.relay.OutboxRelay` publishes it afterwards.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from service_kit.context import current_request_id
from service_kit.messaging.envelope import (
    HEADER_REQUEST_ID,
    new_message_id,
    trace_headers,
    utc_now,
)
from service_kit.messaging.events import Event, is_concrete
from service_kit.messaging.tables import checked_schema, tables_for


def notify_channel(schema: str) -> str:
    """The LISTEN/NOTIFY channel that wakes the relay of ``schema``."""
    return f"{checked_schema(schema)}_outbox"


async def add_event(session: AsyncSession, event: Event) -> uuid.UUID:
    """Writes ``event`` to its producer's outbox in the session's transaction; returns its id.

    Type, version, routing key and producer come from the event's class. The
    outbox is the one in the schema named after the producer: each service's
    tables live in a schema of its own name (auth, results, bulk, notifier), so
    a service can only write the events it produces; writing another's (bulk's
    ``marks.import_chunk`` from results) fails for want of that schema rather
    than publishing under a false producer.

    The request id and W3C trace context of the current request are captured
    now, so the consumer's logs and spans join the request that caused them.
    """
    model = type(event)
    if not isinstance(event, Event) or not is_concrete(model):
        raise TypeError(f"{model.__qualname__} is not an Event with an event_type")
    schema = model.producer
    headers: dict[str, str] = dict(trace_headers())
    request_id = current_request_id()
    if request_id != "-":
        headers[HEADER_REQUEST_ID] = request_id
    message_id = new_message_id()
    outbox = tables_for(schema).outbox
    await session.execute(
        insert(outbox).values(
            id=message_id,
            type=model.event_type,
            version=model.event_version,
            routing_key=model.routing_key,
            producer=model.producer,
            payload=event.model_dump(mode="json"),
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
