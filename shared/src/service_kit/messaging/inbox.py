"""The inbox: makes a consumer's side effects happen once per message id.

:func:`claim_message` runs in the same transaction as the side effects. A
redelivered message (the broker never saw our ack, the relay re-sent after a
crash) finds its id already claimed and is dropped. If the side effects roll
back, so does the claim, and a retry can claim it again.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from service_kit.messaging.tables import tables_for


async def claim_message(
    session: AsyncSession, message_id: uuid.UUID, consumer: str, *, schema: str
) -> bool:
    """True if this consumer sees ``message_id`` for the first time (then do the work).

    A concurrent claim of the same id blocks on the primary key until the
    other transaction ends, then answers False if it committed.
    """
    inbox = tables_for(schema).inbox
    claimed = await session.scalar(
        insert(inbox)
        .values(message_id=message_id, consumer=consumer)
        .on_conflict_do_nothing(index_elements=["message_id", "consumer"])
        .returning(inbox.c.message_id)
    )
    return claimed is not None


async def purge_inbox(session: AsyncSession, *, schema: str, older_than: timedelta) -> int:
    """Forgets ids claimed longer ago than ``older_than``; returns how many.

    Keep ``older_than`` far beyond any redelivery window (DLQ replays included):
    a message replayed after its id is purged would be applied again.
    """
    inbox = tables_for(schema).inbox
    result = await session.execute(
        delete(inbox).where(inbox.c.received_at < func.now() - older_than)
    )
    return int(getattr(result, "rowcount", 0) or 0)
