"""Email and webhook delivery against a real SMTP server (aiosmtpd), a real HTTP receiver
that checks signatures, and real RabbitMQ: delivery commands published to the test's
exchange, consumed by the delivery consumers with their retry tiers and DLQ."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import pytest
from delivery_support import (
    SmtpSink,
    WebhookReceiver,
    add_notification,
    add_user,
    attempts,
    deliveries,
    smtp_sink,
    webhook_receiver,
)
from notifier_service.delivery.email import SmtpMailer
from notifier_service.delivery.webhooks import WebhookPoster
from notifier_service.domain import webhooks
from notifier_service.messaging.deliveries import (
    email_queue,
    register_email_deliveries,
    register_webhook_deliveries,
    webhook_queue,
)
from notifier_service.settings import NotifierSettings
from notifier_support import drop_broker_objects, eventually, publish_event, queue_depth, scalar
from prometheus_client import REGISTRY
from pydantic import SecretStr
from service_kit.db import Database
from service_kit.messaging.broker import EventBroker
from service_kit.messaging.topology import queue_names

SECRET = "test-webhook-secret"
RESET_FACTS = {"expires_at": "2026-12-07T10:00:00+00:00"}


@pytest.fixture
def delivery_settings(settings: NotifierSettings) -> NotifierSettings:
    return settings.model_copy(
        update={
            "mail_from": "Exam results <results@school.example>",
            "smtp_timeout_seconds": 5.0,
            "webhook_secret": SecretStr(SECRET),
            "webhook_timeout_seconds": 5.0,
        }
    )


def mailer_for(sink: SmtpSink, settings: NotifierSettings, connections: int = 2) -> SmtpMailer:
    configured = settings.model_copy(
        update={"smtp_url": SecretStr(sink.url), "smtp_connections": connections}
    )
    mailer = SmtpMailer.from_settings(configured)
    assert mailer is not None
    return mailer


def poster_for(receiver: WebhookReceiver, settings: NotifierSettings) -> WebhookPoster:
    poster = WebhookPoster.from_settings(settings.model_copy(update={"webhook_url": receiver.url}))
    assert poster is not None
    return poster


@asynccontextmanager
async def consuming(
    settings: NotifierSettings,
    db: Database,
    *,
    mailer: SmtpMailer | None = None,
    poster: WebhookPoster | None = None,
) -> AsyncIterator[None]:
    """The delivery consumers running against the test's queues; queues dropped after."""
    events = EventBroker(settings, graceful_timeout_seconds=5)
    specs = []
    if mailer is not None:
        register_email_deliveries(events, db=db, mailer=mailer, settings=settings)
        specs.append(email_queue(settings))
    if poster is not None:
        register_webhook_deliveries(events, db=db, poster=poster, settings=settings)
        specs.append(webhook_queue(settings))
    try:
        async with events:
            yield
    finally:
        if mailer is not None:
            await mailer.aclose()
        if poster is not None:
            await poster.aclose()
        await drop_broker_objects(settings, specs)


async def ask_email(
    settings: NotifierSettings, ids: Sequence[uuid.UUID], tokens: dict[uuid.UUID, str] | None = None
) -> uuid.UUID:
    items = [{"notification_id": str(i), "token": (tokens or {}).get(i)} for i in ids]
    return await publish_event(
        settings, "notifier.email_delivery", {"items": items}, producer="notifier"
    )


async def ask_webhook(settings: NotifierSettings, ids: Sequence[uuid.UUID]) -> uuid.UUID:
    return await publish_event(
        settings,
        "notifier.webhook_delivery",
        {"notification_ids": [str(i) for i in ids]},
        producer="notifier",
    )


async def consumed(db: Database, message_id: uuid.UUID) -> bool:
    """Whether a handler committed this message (its inbox claim is in)."""
    found = await scalar(
        db, "SELECT count(*) FROM notifier.inbox WHERE message_id = :id", id=message_id
    )
    return bool(found)


async def statuses(db: Database, channel: str, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    rows = await deliveries(db, channel)
    return {i: rows[i]["status"] for i in ids}


async def all_status(db: Database, channel: str, ids: Sequence[uuid.UUID], status: str) -> bool:
    return set((await statuses(db, channel, ids)).values()) == {status}


def metric(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- email ----------------------------------------------------------------------------


async def test_one_email_per_pending_delivery_with_text_html_and_the_notification_id(
    delivery_settings: NotifierSettings, db: Database
) -> None:
    users = [await add_user(db, full_name=f"Student {n}") for n in range(3)]
    ids = [await add_notification(db, u, channels=("email",)) for u in users]
    sent_before = metric("notifier_deliveries_total", {"channel": "email", "outcome": "sent"})
    with smtp_sink() as sink:
        async with consuming(delivery_settings, db, mailer=mailer_for(sink, delivery_settings)):
            await ask_email(delivery_settings, ids)
            await eventually(lambda: all_status(db, "email", ids, "sent"))

    assert sorted(sink.by_message_id().values()) == [1, 1, 1]
    by_id = {str(m.message["Message-ID"]): m for m in sink.received}
    addresses = await deliveries(db, "email")
    for user, notification_id in zip(users, ids, strict=True):
        mail = by_id[f"<notification-{notification_id}@school.example>"]
        address = await scalar(db, "SELECT email FROM notifier.users WHERE id = :id", id=user)
        assert mail.rcpt_tos == [address]
        assert mail.mail_from == "results@school.example"
        assert mail.message["From"] == "Exam results <results@school.example>"
        assert address in str(mail.message["To"])
        assert "Physics" in str(mail.message["Subject"])
        assert mail.message.get_content_type() == "multipart/alternative"
        plain = mail.message.get_body(("plain",))
        rich = mail.message.get_body(("html",))
        assert plain is not None and rich is not None
        assert "https://app.example.edu/exams/" in plain.get_content()
        assert "<" in rich.get_content()
        assert addresses[notification_id]["sent_at"] is not None
        assert addresses[notification_id]["attempts"] == 1
    assert await attempts(db, "email") == {i: ["sent"] for i in ids}
    sent_after = metric("notifier_deliveries_total", {"channel": "email", "outcome": "sent"})
    assert sent_after - sent_before == 3


async def test_many_emails_go_over_one_reused_connection(
    delivery_settings: NotifierSettings, db: Database
) -> None:
    user = await add_user(db)
    ids = [await add_notification(db, user, channels=("email",)) for _ in range(12)]
    with smtp_sink() as sink:
        mailer = mailer_for(sink, delivery_settings, connections=1)
        async with consuming(delivery_settings, db, mailer=mailer):
            await ask_email(delivery_settings, ids[:6])
            await ask_email(delivery_settings, ids[6:])
            await eventually(lambda: all_status(db, "email", ids, "sent"))
            opened = mailer.connections_opened

    assert len(sink.received) == 12
    assert len({m.peer for m in sink.received}) == 1
    assert opened == 1


async def test_the_token_is_only_in_the_email_and_a_missing_one_fails_for_good(
    delivery_settings: NotifierSettings, db: Database
) -> None:
    user = await add_user(db, active=False)  # invited and resetting users may be inactive
    with_token = await add_notification(db, user, kind="password_reset", facts=RESET_FACTS)
    without = await add_notification(
        db, user, kind="password_reset", facts=RESET_FACTS, channels=("email",)
    )
    token = f"tok-{uuid.uuid4().hex}"
    with smtp_sink() as sink, webhook_receiver(SECRET.encode()) as receiver:
        async with consuming(
            delivery_settings,
            db,
            mailer=mailer_for(sink, delivery_settings),
            poster=poster_for(receiver, delivery_settings),
        ):
            message = await ask_email(delivery_settings, [with_token, without], {with_token: token})
            await ask_webhook(delivery_settings, [with_token])
            await eventually(lambda: all_status(db, "webhook", [with_token], "sent"))
            await eventually(lambda: consumed(db, message))

    assert len(sink.received) == 1
    plain = sink.received[0].message.get_body(("plain",))
    assert plain is not None
    assert f"https://app.example.edu/reset-password?token={token}" in plain.get_content()
    assert all(token.encode() not in post.body for post in receiver.posts)
    assert await statuses(db, "email", [with_token, without]) == {
        with_token: "sent",
        without: "failed",
    }
    assert (await deliveries(db, "email"))[without]["last_error"] == (
        "token missing from the delivery command"
    )
    stored = await scalar(
        db,
        "SELECT count(*) FROM notifier.notifications n JOIN notifier.delivery_attempts a "
        "ON a.notification_id = n.id WHERE n::text LIKE :t OR a::text LIKE :t",
        t=f"%{token}%",
    )
    assert stored == 0


async def test_smtp_down_then_back_every_mail_arrives_exactly_once(
    delivery_settings: NotifierSettings, db: Database
) -> None:
    settings = delivery_settings.model_copy(
        update={"delivery_retry_delays_seconds": (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)}
    )
    user = await add_user(db)
    first = [await add_notification(db, user, channels=("email",)) for _ in range(2)]
    later = [await add_notification(db, user, channels=("email",)) for _ in range(5)]
    with smtp_sink() as sink:
        async with consuming(settings, db, mailer=mailer_for(sink, settings)):
            await ask_email(settings, first)
            await eventually(lambda: all_status(db, "email", first, "sent"))
            sink.stop()  # the pooled connections now lead nowhere
            await ask_email(settings, later)
            await eventually(lambda: _any_transient(db))
            sink.start()
            await eventually(lambda: all_status(db, "email", later, "sent"))
            dlq = queue_names(settings, email_queue(settings)).dlq
            assert await queue_depth(settings, dlq) == 0

    counts = sink.by_message_id()
    assert len(counts) == 7
    assert set(counts.values()) == {1}
    recorded = await attempts(db, "email")
    for notification_id in later:
        outcomes = recorded[notification_id]
        assert outcomes[-1] == "sent"
        assert outcomes.count("sent") == 1
        assert set(outcomes[:-1]) == {"transient"}
    assert any(len(recorded[i]) > 1 for i in later)


async def _any_transient(db: Database) -> bool:
    found = await scalar(
        db, "SELECT count(*) FROM notifier.delivery_attempts WHERE outcome = 'transient'"
    )
    return bool(found)


async def test_a_refused_recipient_fails_for_good_and_the_others_are_sent(
    delivery_settings: NotifierSettings, db: Database
) -> None:
    good = [await add_user(db) for _ in range(2)]
    bad = await add_user(db, email=f"nobody-{uuid.uuid4().hex[:6]}@example.edu")
    ids = [await add_notification(db, u, channels=("email",)) for u in [*good, bad]]
    with smtp_sink() as sink:
        sink.refuse["nobody-"] = "550 5.1.1 no such user"
        async with consuming(delivery_settings, db, mailer=mailer_for(sink, delivery_settings)):
            message = await ask_email(delivery_settings, ids)
            await eventually(lambda: consumed(db, message))
            dlq = queue_names(delivery_settings, email_queue(delivery_settings)).dlq
            assert await queue_depth(delivery_settings, dlq) == 0

    assert len(sink.received) == 2
    assert await statuses(db, "email", ids) == {
        ids[0]: "sent",
        ids[1]: "sent",
        ids[2]: "failed",
    }
    assert (await deliveries(db, "email"))[ids[2]]["last_error"].startswith("smtp 550")
    assert await attempts(db, "email") == {
        ids[0]: ["sent"],
        ids[1]: ["sent"],
        ids[2]: ["permanent"],
    }


async def test_a_4xx_reply_is_retried(delivery_settings: NotifierSettings, db: Database) -> None:
    user = await add_user(db, email=f"busy-{uuid.uuid4().hex[:6]}@example.edu")
    notification_id = await add_notification(db, user, channels=("email",))
    with smtp_sink() as sink:
        sink.refuse["busy-"] = "451 4.3.0 try again later"
        async with consuming(delivery_settings, db, mailer=mailer_for(sink, delivery_settings)):
            await ask_email(delivery_settings, [notification_id])
            await eventually(lambda: _any_transient(db))
            sink.refuse.clear()
            await eventually(lambda: all_status(db, "email", [notification_id], "sent"))

    assert len(sink.received) == 1
    outcomes = (await attempts(db, "email"))[notification_id]
    assert outcomes[-1] == "sent" and set(outcomes[:-1]) == {"transient"}


async def test_after_the_last_tier_deliveries_are_dead_lettered_and_counted(
    delivery_settings: NotifierSettings, db: Database
) -> None:
    user = await add_user(db)
    ids = [await add_notification(db, user, channels=("email",)) for _ in range(2)]
    before = metric("notifier_deliveries_dead_lettered_total", {"channel": "email"})
    dlq = queue_names(delivery_settings, email_queue(delivery_settings)).dlq
    with smtp_sink(started=False) as sink:  # nothing listens on its port
        async with consuming(delivery_settings, db, mailer=mailer_for(sink, delivery_settings)):
            await ask_email(delivery_settings, ids)
            await eventually(lambda: all_status(db, "email", ids, "dead_lettered"))
            await eventually(lambda: _depth_is(delivery_settings, dlq, 1))

    tiers = len(delivery_settings.delivery_retry_delays_seconds)
    assert await attempts(db, "email") == {i: ["transient"] * (tiers + 1) for i in ids}
    after = metric("notifier_deliveries_dead_lettered_total", {"channel": "email"})
    assert after - before == 2
    assert sink.received == []


async def _depth_is(settings: NotifierSettings, queue: str, depth: int) -> bool:
    return await queue_depth(settings, queue) == depth


# -- webhooks -------------------------------------------------------------------------


async def test_webhooks_are_signed_and_a_replayed_request_fails_verification(
    delivery_settings: NotifierSettings, db: Database
) -> None:
    user = await add_user(db)
    notification_id = await add_notification(db, user, channels=("webhook",))
    with webhook_receiver(SECRET.encode()) as receiver:
        async with consuming(delivery_settings, db, poster=poster_for(receiver, delivery_settings)):
            await ask_webhook(delivery_settings, [notification_id])
            await eventually(lambda: all_status(db, "webhook", [notification_id], "sent"))

    [post] = receiver.posts
    assert post.verified
    body: dict[str, Any] = post.json()
    assert body["id"] == str(notification_id)
    assert body["type"] == "notification.created"
    assert body["notification"]["id"] == str(notification_id)
    assert body["notification"]["user_id"] == str(user)
    assert body["notification"]["kind"] == "results_published"
    assert set(body["notification"]) == {
        "id",
        "user_id",
        "kind",
        "title",
        "body",
        "data",
        "created_at",
        "read_at",
    }
    stamp = int(post.headers[webhooks.TIMESTAMP_HEADER.lower()])
    secret = SECRET.encode()
    assert webhooks.verify(secret, post.headers, post.body, stamp + 10)
    # Replayed later: too old. With a fresh timestamp: the signature no longer matches.
    assert not webhooks.verify(secret, post.headers, post.body, stamp + 301)
    refreshed = {**post.headers, webhooks.TIMESTAMP_HEADER: str(int(time.time()) + 301)}
    assert not webhooks.verify(secret, refreshed, post.body, time.time() + 301)
    assert not webhooks.verify(b"another secret", post.headers, post.body, stamp)
    assert await attempts(db, "webhook") == {notification_id: ["sent"]}


async def test_a_webhook_answered_500_then_200_is_delivered_once(
    delivery_settings: NotifierSettings, db: Database
) -> None:
    user = await add_user(db)
    flaky, steady = [await add_notification(db, user, channels=("webhook",)) for _ in range(2)]
    with webhook_receiver(SECRET.encode()) as receiver:
        receiver.answer(flaky, 500)
        async with consuming(delivery_settings, db, poster=poster_for(receiver, delivery_settings)):
            await ask_webhook(delivery_settings, [flaky, steady])
            await eventually(lambda: all_status(db, "webhook", [flaky, steady], "sent"))

    assert [p.status for p in receiver.for_notification(flaky)] == [500, 200]
    assert [p.status for p in receiver.for_notification(steady)] == [200]
    assert await attempts(db, "webhook") == {flaky: ["transient", "sent"], steady: ["sent"]}


async def test_a_webhook_answered_400_fails_for_good(
    delivery_settings: NotifierSettings, db: Database
) -> None:
    user = await add_user(db)
    notification_id = await add_notification(db, user, channels=("webhook",))
    with webhook_receiver(SECRET.encode()) as receiver:
        receiver.answer(notification_id, 400)
        async with consuming(delivery_settings, db, poster=poster_for(receiver, delivery_settings)):
            message = await ask_webhook(delivery_settings, [notification_id])
            await eventually(lambda: consumed(db, message))

    assert [p.status for p in receiver.posts] == [400]
    assert await statuses(db, "webhook", [notification_id]) == {notification_id: "failed"}
    assert (await deliveries(db, "webhook"))[notification_id]["last_error"] == "webhook 400"
    assert await attempts(db, "webhook") == {notification_id: ["permanent"]}


async def test_email_failing_never_holds_up_webhooks(
    delivery_settings: NotifierSettings, db: Database
) -> None:
    settings = delivery_settings.model_copy(update={"delivery_retry_delays_seconds": (5.0, 10.0)})
    user = await add_user(db)
    ids = [await add_notification(db, user) for _ in range(3)]
    with smtp_sink(started=False) as sink, webhook_receiver(SECRET.encode()) as receiver:
        async with consuming(
            settings,
            db,
            mailer=mailer_for(sink, settings),
            poster=poster_for(receiver, settings),
        ):
            await ask_email(settings, ids)
            await eventually(lambda: _any_transient(db))
            await ask_webhook(settings, ids)
            await eventually(lambda: all_status(db, "webhook", ids, "sent"))
            assert await all_status(db, "email", ids, "pending")

    assert len(receiver.posts) == 3
    assert all(p.verified for p in receiver.posts)
