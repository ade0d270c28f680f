"""The whole way in the running worker: an event notifies, the fan-out writes the delivery
commands to the outbox, the relay publishes them, the delivery consumers email (aiosmtpd)
and POST (a receiver checking signatures), each exactly once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from asgi_lifespan import LifespanManager
from delivery_support import SmtpSink, WebhookReceiver, smtp_sink, webhook_receiver
from notifier_service.main import create_app
from notifier_service.messaging.causes import CAUSES_QUEUE
from notifier_service.messaging.deliveries import email_queue, webhook_queue
from notifier_service.messaging.users import USERS_QUEUE
from notifier_service.settings import NotifierSettings
from notifier_support import (
    AuthStub,
    JwtKeys,
    drop_broker_objects,
    eventually,
    publish_event,
    published_event,
    scalar,
    static_verifier,
)
from pydantic import SecretStr
from redis.asyncio import Redis
from service_kit.db import Database

SECRET = "flow-webhook-secret"


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with smtp_sink() as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver(SECRET.encode()) as running:
        yield running


@pytest.fixture
async def delivering(
    settings: NotifierSettings,
    jwt_keys: JwtKeys,
    redis: Redis,
    sink: SmtpSink,
    receiver: WebhookReceiver,
) -> AsyncIterator[NotifierSettings]:
    """The notifier with its workers on, email to the sink and webhooks to the receiver."""
    configured = settings.model_copy(
        update={
            "run_workers": True,
            "smtp_url": SecretStr(sink.url),
            "mail_from": "Exam results <results@school.example>",
            "webhook_url": receiver.url,
            "webhook_secret": SecretStr(SECRET),
        }
    )
    app = create_app(configured)
    app.state.token_verifier = static_verifier(jwt_keys, configured)
    try:
        async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
            yield configured
    finally:
        await drop_broker_objects(
            configured,
            [CAUSES_QUEUE, USERS_QUEUE, email_queue(configured), webhook_queue(configured)],
        )


async def _sent(db: Database, channel: str, expected: int) -> bool:
    found = await scalar(
        db,
        "SELECT count(*) FROM notifier.deliveries WHERE channel = :c AND status = 'sent'",
        c=channel,
    )
    return int(found) == expected


async def test_a_publication_emails_and_posts_each_student_once(
    delivering: NotifierSettings,
    db: Database,
    auth_stub: AuthStub,
    sink: SmtpSink,
    receiver: WebhookReceiver,
) -> None:
    students = [auth_stub.add_user() for _ in range(4)]
    event = published_event(uuid.uuid4(), [uuid.UUID(s["id"]) for s in students])
    message_id = uuid.uuid4()
    await publish_event(delivering, "results.published", event, message_id=message_id)
    await publish_event(delivering, "results.published", event, message_id=message_id)
    await publish_event(delivering, "results.published", event)  # replayed: a new id
    await eventually(lambda: _sent(db, "email", 4))
    await eventually(lambda: _sent(db, "webhook", 4))

    assert sorted(m.rcpt_tos[0] for m in sink.received) == sorted(s["email"] for s in students)
    assert set(sink.by_message_id().values()) == {1}
    assert len(receiver.posts) == 4 and all(p.verified for p in receiver.posts)
    assert {p.json()["notification"]["user_id"] for p in receiver.posts} == {
        s["id"] for s in students
    }


async def test_an_invitation_link_reaches_the_email_only(
    delivering: NotifierSettings,
    db: Database,
    auth_stub: AuthStub,
    sink: SmtpSink,
    receiver: WebhookReceiver,
) -> None:
    user = auth_stub.add_user(active=False)
    token = f"invite-{uuid.uuid4().hex}"
    invited = {**user, "token": token, "expires_at": "2026-12-13T10:00:00Z"}
    await publish_event(delivering, "user.invited", invited, producer="auth")
    await eventually(lambda: _sent(db, "email", 1))
    await eventually(lambda: _sent(db, "webhook", 1))

    [mail] = sink.received
    plain = mail.message.get_body(("plain",))
    assert plain is not None
    assert f"https://app.example.edu/accept-invitation?token={token}" in plain.get_content()
    assert all(token.encode() not in p.body for p in receiver.posts)
    leaked = await scalar(
        db,
        "SELECT (SELECT count(*) FROM notifier.notifications n WHERE n::text LIKE :t)"
        " + (SELECT count(*) FROM notifier.delivery_attempts a WHERE a::text LIKE :t)"
        " + (SELECT count(*) FROM notifier.deliveries d WHERE d::text LIKE :t)",
        t=f"%{token}%",
    )
    assert leaked == 0
