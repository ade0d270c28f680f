"""The students read model's feed: ``user.created`` / ``user.updated`` from auth.

Idempotent through the kit's inbox (a redelivered message id is dropped), and
order-safe through auth's per-user ``version`` (an older state never
overwrites a newer one). Only students are kept; a student whose role changes
stays (their marks point at them) but becomes inactive.
"""

from __future__ import annotations

from service_kit.db import Database
from service_kit.messaging.broker import EventBroker
from service_kit.messaging.consumer import EventConsumer, ReceivedEvent
from service_kit.messaging.topology import QueueSpec
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.messaging.auth_events import UserChangedV1, UserCreatedV1, UserUpdatedV1
from results_service.settings import SCHEMA
from results_service.store.students import StudentRecord, mark_former_student, upsert_students

USER_CREATED = UserCreatedV1.routing_key
USER_UPDATED = UserUpdatedV1.routing_key

USER_EVENTS_QUEUE = QueueSpec("results.user-events", (USER_CREATED, USER_UPDATED))


async def on_user_changed(event: ReceivedEvent[UserChangedV1], session: AsyncSession) -> None:
    user = event.data
    if user.role == "student" and user.student_number:
        record = StudentRecord(
            user_id=user.id,
            student_number=user.student_number,
            full_name=user.full_name,
            email=user.email,
            active=user.active,
            version=user.version,
        )
        await upsert_students(session, [record])
    else:
        await mark_former_student(session, user.id, user.version)


def register_user_events(events: EventBroker, *, db: Database) -> EventConsumer:
    consumer = events.consumer(USER_EVENTS_QUEUE, db=db, schema=SCHEMA)
    consumer.handler(UserCreatedV1)(on_user_changed)
    consumer.handler(UserUpdatedV1)(on_user_changed)
    return consumer
