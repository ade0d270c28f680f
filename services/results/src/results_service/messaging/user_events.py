"""The students read model's feed: ``user.created`` / ``user.updated`` from auth.

Idempotent through the kit's inbox (a redelivered message id is dropped), and
order-safe through auth's per-user ``version`` (an older state never
overwrites a newer one). Only students are kept; a student whose role changes
stays (their marks point at them) but becomes inactive.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field
from service_kit.db import Database
from service_kit.messaging.broker import EventBroker
from service_kit.messaging.consumer import EventConsumer, ReceivedEvent
from service_kit.messaging.topology import QueueSpec
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.settings import SCHEMA
from results_service.store.students import StudentRecord, mark_former_student, upsert_students

USER_CREATED = "user.created"
USER_UPDATED = "user.updated"

USER_EVENTS_QUEUE = QueueSpec("results.user-events", (USER_CREATED, USER_UPDATED))


class UserChangedV1(BaseModel):
    """What results reads of auth's user events v1 (a tolerant reader: extra fields ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: uuid.UUID = Field(description="auth's user id.")
    email: str = ""
    full_name: str = ""
    role: str = Field(description="Only `student` is kept.")
    student_number: str | None = None
    active: bool
    version: int = Field(ge=0, description="auth's per-user version: orders the events.")


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
    consumer.handler(USER_CREATED, model=UserChangedV1)(on_user_changed)
    consumer.handler(USER_UPDATED, model=UserChangedV1)(on_user_changed)
    return consumer
