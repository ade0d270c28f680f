"""The fan-out, handler by handler, against the real database: one notification per
(user, cause), set-based, with its deliveries asked for in the same transaction."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from notifier_service.clients.auth import AuthUserLookup, UserLookupUnavailable
from notifier_service.contracts.deliveries import EmailDeliveryV1
from notifier_service.messaging.causes import job_intents, published_intents, updated_intents
from notifier_service.messaging.readers import (
    BulkJobCompletedV1,
    ResultsPublishedV1,
    ResultsUpdatedV1,
)
from notifier_service.settings import NotifierSettings
from notifier_service.store.users import UserRecord, set_email_preference, upsert_users
from notifier_service.streams.hub import asyncpg_dsn
from notifier_service.streams.signals import CHANNEL, NewNotifications, parse
from notifier_service.usecases.notify import Channels, Intent, notify
from notifier_support import AuthStub, job_event, published_event, rows, scalar, updated_event
from service_kit.db import Database

NO_CHANNELS = Channels(email=False, webhook=False, batch_size=50)
ALL_CHANNELS = Channels(email=True, webhook=True, batch_size=2)


@pytest.fixture
async def lookup(settings: NotifierSettings) -> Any:
    import httpx
    from service_kit.service_credentials import ServiceTokens

    tokens = ServiceTokens(settings.auth_url, "notifier", "secret")
    async with httpx.AsyncClient(auth=tokens.auth("auth"), timeout=5) as http:
        yield AuthUserLookup(http, settings.auth_url)
    await tokens.aclose()


async def known(db: Database, auth_stub: AuthStub, count: int, **kw: Any) -> list[uuid.UUID]:
    """Users in auth and in the read model."""
    made = [auth_stub.add_user(**kw) for _ in range(count)]
    async with db.transaction() as session:
        await upsert_users(
            session,
            [
                UserRecord(
                    uuid.UUID(u["id"]), u["email"], u["full_name"], u["role"], u["active"], 1
                )
                for u in made
            ],
        )
    return [uuid.UUID(u["id"]) for u in made]


async def run(
    db: Database, intents: list[Intent], lookup: Any, channels: Channels = NO_CHANNELS
) -> Any:
    async with db.transaction() as session:
        return await notify(session, intents, lookup=lookup, channels=channels)


def published(exam_id: uuid.UUID, students: list[uuid.UUID]) -> list[Intent]:
    return published_intents(ResultsPublishedV1.model_validate(published_event(exam_id, students)))


async def test_one_notification_per_student_however_often_the_chunk_comes(
    db: Database, auth_stub: AuthStub, lookup: Any
) -> None:
    students = await known(db, auth_stub, 5)
    exam = uuid.uuid4()
    first = await run(db, published(exam, students), lookup)
    assert (first.created, first.already_there) == (5, 0)
    for _ in range(2):  # redelivered, replayed under another message id
        again = await run(db, published(exam, students), lookup)
        assert (again.created, again.already_there) == (0, 5)
    found = await rows(
        db, "SELECT user_id, kind, title, body, data FROM notifier.notifications ORDER BY seq"
    )
    assert sorted(r["user_id"] for r in found) == sorted(students)
    assert {r["kind"] for r in found} == {"results_published"}
    assert all("Physics" in r["title"] for r in found)
    assert found[0]["data"]["link"] == f"/exams/{exam}/results"


async def test_another_exam_or_generation_is_another_cause(
    db: Database, auth_stub: AuthStub, lookup: Any
) -> None:
    [student] = await known(db, auth_stub, 1)
    exam = uuid.uuid4()
    await run(db, published(exam, [student]), lookup)
    await run(db, published(uuid.uuid4(), [student]), lookup)
    for generation in (2, 3, 3):
        data = ResultsUpdatedV1.model_validate(
            updated_event(exam, generation, {student: "updated"})
        )
        await run(db, updated_intents(data), lookup)
    kinds = await rows(db, "SELECT kind FROM notifier.notifications ORDER BY seq")
    assert [r["kind"] for r in kinds] == [
        "results_published",
        "results_published",
        "results_updated",
        "results_updated",
    ]


async def test_a_user_missing_from_the_read_model_is_asked_of_auth(
    db: Database, auth_stub: AuthStub, lookup: Any
) -> None:
    fresh = auth_stub.add_user(full_name="Just Created")
    unknown = uuid.uuid4()  # auth does not know them either
    before = auth_stub.lookups
    outcome = await run(db, published(uuid.uuid4(), [uuid.UUID(fresh["id"]), unknown]), lookup)
    assert (outcome.created, outcome.unknown_users) == (1, 1)
    assert auth_stub.lookups - before == 2
    stored = await rows(db, "SELECT full_name, version FROM notifier.users")
    assert [(r["full_name"], r["version"]) for r in stored] == [("Just Created", 1)]


async def test_auth_down_is_transient_and_leaves_nothing(
    db: Database, auth_stub: AuthStub, lookup: Any
) -> None:
    auth_stub.failing = True
    with pytest.raises(UserLookupUnavailable):
        await run(db, published(uuid.uuid4(), [uuid.uuid4()]), lookup)
    assert await scalar(db, "SELECT count(*) FROM notifier.notifications") == 0


async def test_deliveries_are_asked_for_in_batches_with_email_preferences(
    db: Database, auth_stub: AuthStub, lookup: Any
) -> None:
    keen = await known(db, auth_stub, 3)
    [quiet] = await known(db, auth_stub, 1)
    [gone] = await known(db, auth_stub, 1, active=False)
    async with db.transaction() as session:
        await set_email_preference(session, quiet, False)
    await run(db, published(uuid.uuid4(), [*keen, quiet, gone]), lookup, ALL_CHANNELS)

    emails = await rows(
        db,
        "SELECT n.user_id FROM notifier.deliveries d JOIN notifier.notifications n "
        "ON n.id = d.notification_id WHERE d.channel = 'email' AND d.status = 'pending'",
    )
    assert sorted(r["user_id"] for r in emails) == sorted(keen)
    assert await scalar(db, "SELECT count(*) FROM notifier.deliveries WHERE channel='webhook'") == 5
    outbox = await rows(db, "SELECT type, payload FROM notifier.outbox ORDER BY occurred_at")
    email_items = [
        i for o in outbox if o["type"] == EmailDeliveryV1.event_type for i in o["payload"]["items"]
    ]
    assert len(email_items) == 3 and all(i["token"] is None for i in email_items)
    assert [
        len(o["payload"]["items"]) for o in outbox if o["type"] == "notifier.email_delivery"
    ] == [2, 1]
    webhook_ids = [
        n
        for o in outbox
        if o["type"] == "notifier.webhook_delivery"
        for n in o["payload"]["notification_ids"]
    ]
    assert len(webhook_ids) == 5


async def test_a_redelivered_cause_asks_for_no_second_delivery(
    db: Database, auth_stub: AuthStub, lookup: Any
) -> None:
    students = await known(db, auth_stub, 2)
    exam = uuid.uuid4()
    await run(db, published(exam, students), lookup, ALL_CHANNELS)
    await run(db, published(exam, students), lookup, ALL_CHANNELS)
    assert await scalar(db, "SELECT count(*) FROM notifier.deliveries") == 4
    assert await scalar(db, "SELECT count(*) FROM notifier.outbox") == 2


async def test_an_invitation_is_emailed_to_the_inactive_invitee_with_the_token_in_no_row(
    db: Database, auth_stub: AuthStub, lookup: Any
) -> None:
    from notifier_service.domain import causes
    from notifier_service.domain.facts import AccountInvited
    from notifier_service.domain.kinds import NotificationKind

    [invitee] = await known(db, auth_stub, 1, active=False, role="examiner")
    async with db.transaction() as session:
        await set_email_preference(session, invitee, False)  # invitations are emailed anyway
    token = "tok_" + uuid.uuid4().hex
    intent = Intent(
        invitee,
        NotificationKind.ACCOUNT_INVITED,
        causes.invitation(token),
        AccountInvited("", token, datetime.now(UTC) + timedelta(days=3)),
        token=token,
    )
    await run(db, [intent], lookup, ALL_CHANNELS)
    await run(db, [intent], lookup, ALL_CHANNELS)
    stored = await rows(db, "SELECT cause, title, body, data, facts FROM notifier.notifications")
    assert len(stored) == 1
    assert token not in repr(stored)
    emails = await rows(
        db, "SELECT payload FROM notifier.outbox WHERE type = 'notifier.email_delivery'"
    )
    assert [i["token"] for e in emails for i in e["payload"]["items"]] == [token]
    webhooks = await rows(
        db, "SELECT payload FROM notifier.outbox WHERE type = 'notifier.webhook_delivery'"
    )
    assert token not in repr(webhooks)


async def test_jobs_tell_their_creator(db: Database, auth_stub: AuthStub, lookup: Any) -> None:
    [examiner] = await known(db, auth_stub, 1, role="examiner")
    for kind, status in (
        ("marks_import", "completed_with_errors"),
        ("users_import", "failed"),
        ("results_export", "succeeded"),
        ("results_export", "failed"),  # nothing to fetch: no notification
    ):
        data = BulkJobCompletedV1.model_validate(job_event(examiner, kind=kind, status=status))
        await run(db, job_intents(data), lookup)
    found = await rows(db, "SELECT kind, data FROM notifier.notifications ORDER BY seq")
    assert [r["kind"] for r in found] == ["import_finished", "import_finished", "export_ready"]
    assert found[0]["data"]["status"] == "completed_with_errors"
    assert found[2]["data"]["link"].startswith("/jobs/")


async def test_new_notifications_are_signalled_on_commit_only(
    db: Database, auth_stub: AuthStub, lookup: Any, settings: NotifierSettings
) -> None:
    students = await known(db, auth_stub, 3)
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        await listener.add_listener(CHANNEL, lambda *args: received.put_nowait(args[-1]))
        with pytest.raises(RuntimeError):
            async with db.transaction() as session:
                await notify(
                    session, published(uuid.uuid4(), students), lookup=lookup, channels=NO_CHANNELS
                )
                raise RuntimeError("rolled back")
        await run(db, published(uuid.uuid4(), students), lookup)
        signal = parse(await asyncio.wait_for(received.get(), 5))
        assert isinstance(signal, NewNotifications)
        seqs = await rows(db, "SELECT seq FROM notifier.notifications ORDER BY seq")
        covered = {s for lo, hi in signal.ranges for s in range(lo, hi + 1)}
        assert covered == {r["seq"] for r in seqs}
        assert received.empty()
    finally:
        await listener.close()
