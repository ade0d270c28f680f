"""The consumers in the running worker, against real RabbitMQ: events delivered again
and replayed notify once, auth's user events feed the read model, and a poison
message goes to the dead-letter queue without holding up the rest."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from httpx import AsyncClient
from notifier_service.messaging.causes import CAUSES_QUEUE
from notifier_service.settings import NotifierSettings
from notifier_support import (
    AuthStub,
    eventually,
    publish_event,
    published_event,
    queue_depth,
    rows,
    scalar,
    user_payload,
)
from service_kit.db import Database
from service_kit.messaging.topology import queue_names


async def count(db: Database, sql: str = "SELECT count(*) FROM notifier.notifications") -> int:
    return int(await scalar(db, sql))


async def test_the_same_publication_delivered_three_times_notifies_once(
    worker_app: tuple[FastAPI, AsyncClient],
    worker_settings: NotifierSettings,
    db: Database,
    auth_stub: AuthStub,
) -> None:
    students = [uuid.UUID(auth_stub.add_user()["id"]) for _ in range(4)]
    exam = uuid.uuid4()
    event = published_event(exam, students)
    message_id = uuid.uuid4()
    await publish_event(worker_settings, "results.published", event, message_id=message_id)
    await publish_event(worker_settings, "results.published", event, message_id=message_id)
    await publish_event(worker_settings, "results.published", event)  # replayed: new id
    await eventually(lambda: _inbox_count(db, 2))
    assert await count(db) == 4
    per_user = await rows(
        db, "SELECT user_id, count(*) AS n FROM notifier.notifications GROUP BY user_id"
    )
    assert {r["user_id"]: r["n"] for r in per_user} == {s: 1 for s in students}


async def _inbox_count(db: Database, expected: int) -> bool:
    return await count(db, "SELECT count(*) FROM notifier.inbox") >= expected


async def test_user_events_feed_the_read_model_in_version_order(
    worker_app: tuple[FastAPI, AsyncClient],
    worker_settings: NotifierSettings,
    db: Database,
    auth_stub: AuthStub,
) -> None:
    user = auth_stub.add_user(full_name="First Name")
    await publish_event(
        worker_settings,
        "user.updated",
        user_payload(user, full_name="Newer", version=3),
        producer="auth",
    )
    await publish_event(
        worker_settings,
        "user.created",
        user_payload(user, full_name="Older", version=1),
        producer="auth",
    )
    await eventually(lambda: _inbox_count(db, 2))
    stored = await rows(db, "SELECT full_name, version FROM notifier.users")
    assert [(r["full_name"], r["version"]) for r in stored] == [("Newer", 3)]


async def test_a_poison_message_is_dead_lettered_and_the_rest_go_on(
    worker_app: tuple[FastAPI, AsyncClient],
    worker_settings: NotifierSettings,
    db: Database,
    auth_stub: AuthStub,
) -> None:
    student = uuid.UUID(auth_stub.add_user()["id"])
    await publish_event(worker_settings, "results.published", {"exam_id": "not an exam"})
    await publish_event(
        worker_settings, "results.published", published_event(uuid.uuid4(), [student]), version=9
    )
    await publish_event(
        worker_settings, "results.published", published_event(uuid.uuid4(), [student])
    )
    await eventually(lambda: count(db))
    dlq = queue_names(worker_settings, CAUSES_QUEUE).dlq
    await eventually(lambda: _depth_is(worker_settings, dlq, 2))
    assert await count(db) == 1


async def _depth_is(settings: NotifierSettings, queue: str, expected: int) -> bool:
    return await queue_depth(settings, queue) == expected


async def test_auth_down_retries_until_the_user_is_found(
    worker_app: tuple[FastAPI, AsyncClient],
    worker_settings: NotifierSettings,
    db: Database,
    auth_stub: AuthStub,
) -> None:
    auth_stub.failing = True
    student = uuid.UUID(auth_stub.add_user()["id"])
    asked_before = auth_stub.lookups
    await publish_event(
        worker_settings, "results.published", published_event(uuid.uuid4(), [student])
    )
    await eventually(lambda: auth_stub.lookups > asked_before)
    assert await count(db) == 0
    auth_stub.failing = False  # the retry tiers bring it back
    await eventually(lambda: count(db))
    assert await count(db) == 1


async def test_invitations_and_resets_notify_once_without_the_token_in_a_row(
    worker_app: tuple[FastAPI, AsyncClient],
    worker_settings: NotifierSettings,
    db: Database,
    auth_stub: AuthStub,
) -> None:
    user = auth_stub.add_user(role="examiner", active=False, full_name="New Examiner")
    invite_token = "invite-" + uuid.uuid4().hex
    reset_token = "reset-" + uuid.uuid4().hex
    invited = user_payload(user, token=invite_token, expires_at="2026-12-09T10:00:00Z")
    reset = user_payload(user, token=reset_token, expires_at="2026-12-06T11:00:00Z")
    for _ in range(2):  # each delivered twice, under new message ids
        await publish_event(worker_settings, "user.invited", invited, producer="auth")
        await publish_event(
            worker_settings, "user.password_reset_requested", reset, producer="auth"
        )
    await eventually(lambda: _inbox_count(db, 4))
    stored = await rows(
        db, "SELECT kind, title, body, data, facts, cause FROM notifier.notifications ORDER BY seq"
    )
    assert sorted(r["kind"] for r in stored) == ["account_invited", "password_reset"]
    assert invite_token not in repr(stored) and reset_token not in repr(stored)
    assert await scalar(db, "SELECT full_name FROM notifier.users") == "New Examiner"
