"""Consumer of bulk's ``users.import_chunk`` commands (contract in :mod:`auth_service.contracts`).

The kit's consumer claims the message id in the inbox and runs the handler in
that transaction; the users, their events, the processed-chunk record and the
answer commit together. A malformed chunk (bad schema, over 1000 rows) is
dead-lettered; a chunk from a non-admin is answered as refused, not retried.
"""

from __future__ import annotations

from service_kit.db import Database
from service_kit.messaging.broker import EventBroker
from service_kit.messaging.consumer import EventConsumer, ReceivedEvent
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.contracts import USER_IMPORT_QUEUE, UserImportChunkV1
from auth_service.hashing import PasswordHashing
from auth_service.store.tables import SCHEMA
from auth_service.usecases.user_imports import import_user_chunk


def register_user_imports(
    events: EventBroker, *, db: Database, hashing: PasswordHashing, invitation_ttl_seconds: int
) -> EventConsumer:
    consumer = events.consumer(USER_IMPORT_QUEUE, db=db, schema=SCHEMA)

    @consumer.handler(UserImportChunkV1)
    async def on_import_chunk(
        event: ReceivedEvent[UserImportChunkV1], session: AsyncSession
    ) -> None:
        await import_user_chunk(session, hashing, invitation_ttl_seconds, event.data)

    return consumer
