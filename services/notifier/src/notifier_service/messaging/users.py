"""The users read model's feed: ``user.created`` / ``user.updated`` from auth.

Idempotent through the kit's inbox, and order-safe through auth's per-user
``version`` (an older state never overwrites a newer one). Every user is
kept, whatever their role: anyone may be told something (an examiner's
import, an admin's export).
"""

from __future__ import annotations

from service_kit.db import Database
from service_kit.messaging.broker import EventBroker
from service_kit.messaging.consumer import EventConsumer, ReceivedEvent
from service_kit.messaging.topology import QueueSpec
from sqlalchemy.ext.asyncio import AsyncSession

from notifier_service.messaging.readers import UserChangedV1, UserCreatedV1, UserUpdatedV1
from notifier_service.settings import SCHEMA
from notifier_service.store.users import UserRecord, upsert_users

USERS_QUEUE = QueueSpec(
    "notifier.user-events", (UserCreatedV1.routing_key, UserUpdatedV1.routing_key)
)


def user_record(user: UserChangedV1) -> UserRecord:
    return UserRecord(user.id, user.email, user.full_name, user.role, user.active, user.version)


async def on_user_changed(event: ReceivedEvent[UserChangedV1], session: AsyncSession) -> None:
    await upsert_users(session, [user_record(event.data)])


def register_user_events(events: EventBroker, *, db: Database) -> EventConsumer:
    consumer = events.consumer(USERS_QUEUE, db=db, schema=SCHEMA)
    consumer.handler(UserCreatedV1)(on_user_changed)
    consumer.handler(UserUpdatedV1)(on_user_changed)
    return consumer
