"""The students read model fed by auth's user events over real RabbitMQ."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
from fastapi import FastAPI
from httpx import AsyncClient
from results_service.messaging.user_events import USER_EVENTS_QUEUE
from results_service.settings import ResultsSettings
from results_support import eventually, publish_event
from service_kit.db import Database
from service_kit.messaging.topology import queue_names
from sqlalchemy import text


def _user(user_id: uuid.UUID, number: str | None, version: int, **over: Any) -> dict[str, Any]:
    return {
        "id": str(user_id),
        "email": f"{user_id.hex[:8]}@example.edu",
        "full_name": "Ada Lovelace",
        "role": "student",
        "student_number": number,
        "active": True,
        "created_at": datetime.now(UTC).isoformat(),
        "version": version,
    } | over


async def _student(db: Database, user_id: uuid.UUID) -> Any:
    async with db.read_session() as session:
        return (
            await session.execute(
                text("SELECT * FROM results.students WHERE user_id = :id"), {"id": user_id}
            )
        ).one_or_none()


async def _inbox_count(db: Database) -> int:
    async with db.read_session() as session:
        return int((await session.execute(text("SELECT count(*) FROM results.inbox"))).scalar_one())


async def test_created_student_lands_in_the_read_model_and_duplicates_are_ignored(
    worker_app: tuple[FastAPI, AsyncClient], worker_settings: ResultsSettings, db: Database
) -> None:
    user_id = uuid.uuid4()
    message_id = await publish_event(
        worker_settings, "user.created", _user(user_id, "UE-1", 1), producer="auth"
    )

    async def stored() -> bool:
        return await _student(db, user_id) is not None

    await eventually(stored, what="user.created applied")
    row = await _student(db, user_id)
    assert (row.student_number, row.full_name, row.active, row.source_version) == (
        "UE-1", "Ada Lovelace", True, 1,
    )  # fmt: skip

    # The same message again (a redelivery), even claiming a newer state: dropped.
    await publish_event(
        worker_settings,
        "user.created",
        _user(user_id, "UE-1", 7, full_name="Changed"),
        message_id=message_id,
    )
    # A later, distinct event proves the consumer has moved past the duplicate.
    marker = uuid.uuid4()
    await publish_event(worker_settings, "user.created", _user(marker, "UE-MARK", 1))

    async def marker_seen() -> bool:
        return await _student(db, marker) is not None

    await eventually(marker_seen, what="marker applied")
    assert (await _student(db, user_id)).full_name == "Ada Lovelace"
    assert await _inbox_count(db) == 2


async def test_events_out_of_order_never_undo_a_newer_state(
    worker_app: tuple[FastAPI, AsyncClient], worker_settings: ResultsSettings, db: Database
) -> None:
    user_id = uuid.uuid4()
    await publish_event(
        worker_settings,
        "user.updated",
        _user(user_id, "UE-2", 2, active=False, full_name="Renamed"),
    )

    async def updated() -> bool:
        return await _student(db, user_id) is not None

    await eventually(updated, what="user.updated applied")
    await publish_event(worker_settings, "user.created", _user(user_id, "UE-2", 1))
    marker = uuid.uuid4()
    await publish_event(worker_settings, "user.created", _user(marker, "UE-MARK2", 1))

    async def marker_seen() -> bool:
        return await _student(db, marker) is not None

    await eventually(marker_seen, what="marker applied")
    row = await _student(db, user_id)
    assert (row.full_name, row.active, row.source_version) == ("Renamed", False, 2)


async def test_non_students_are_not_kept_and_a_former_student_turns_inactive(
    worker_app: tuple[FastAPI, AsyncClient], worker_settings: ResultsSettings, db: Database
) -> None:
    examiner_id, student_id = uuid.uuid4(), uuid.uuid4()
    await publish_event(
        worker_settings, "user.created", _user(examiner_id, None, 1, role="examiner")
    )
    await publish_event(worker_settings, "user.created", _user(student_id, "UE-3", 1))

    async def student_seen() -> bool:
        return await _student(db, student_id) is not None

    await eventually(student_seen, what="student applied")
    await publish_event(
        worker_settings, "user.updated", _user(student_id, None, 2, role="examiner")
    )

    async def demoted() -> bool:
        row = await _student(db, student_id)
        return row is not None and row.active is False

    await eventually(demoted, what="former student inactive")
    assert await _student(db, examiner_id) is None
    assert (await _student(db, student_id)).student_number == "UE-3"


async def test_invalid_payload_goes_to_the_dead_letter_queue(
    worker_app: tuple[FastAPI, AsyncClient], worker_settings: ResultsSettings, db: Database
) -> None:
    await publish_event(worker_settings, "user.created", {"id": "not-a-uuid", "role": "student"})
    dlq = queue_names(worker_settings, USER_EVENTS_QUEUE).dlq
    connection = await aio_pika.connect(worker_settings.rabbitmq_url)
    try:
        channel = await connection.channel()

        async def dead_lettered() -> bool:
            queue = await channel.declare_queue(dlq, passive=True)
            return (queue.declaration_result.message_count or 0) >= 1

        await eventually(dead_lettered, what="message dead-lettered")
    finally:
        await connection.close()
    assert await _inbox_count(db) == 0
