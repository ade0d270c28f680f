"""The delivery queues: email and webhook commands (:mod:`notifier_service.contracts.deliveries`).

One queue per channel, so a failing SMTP server never holds up webhooks and
the other way round. A message names a batch of notifications; its handler

1. loads the deliveries of the batch still pending on its channel (one sent
   or failed before, by an earlier attempt of this message, is skipped);
2. sends them concurrently, up to the SMTP pool's or the webhook poster's
   size, and records each outcome in a transaction of its own right after
   its send, in group commits (:func:`notifier_service.store.deliveries.record_attempts`);
3. if any failed transiently, raises :class:`TransientError`: the kit rolls
   back the message's inbox claim and sends it through the next retry tier,
   where only what is still pending is sent. On the last attempt those are
   marked ``dead_lettered`` and counted, and the kit dead-letters the message.

A permanent failure (SMTP 5xx, HTTP 4xx, no address, a token kind without
its token) is recorded as ``failed`` and not retried.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import get_args

from prometheus_client import Counter, Histogram
from service_kit.db import Database
from service_kit.messaging.broker import EventBroker
from service_kit.messaging.consumer import EventConsumer, ReceivedEvent
from service_kit.messaging.failures import TransientError
from service_kit.messaging.topology import QueueSpec
from sqlalchemy.ext.asyncio import AsyncSession

from notifier_service.contracts.deliveries import EmailDeliveryV1, WebhookDeliveryV1
from notifier_service.delivery.email import OutgoingEmail, SmtpMailer
from notifier_service.delivery.outcomes import SendFailure
from notifier_service.delivery.webhooks import WebhookNotification, WebhookPoster
from notifier_service.domain import texts
from notifier_service.domain.facts import facts_from_stored
from notifier_service.domain.kinds import carries_token
from notifier_service.domain.retry import SmtpReply
from notifier_service.settings import SCHEMA, NotifierSettings
from notifier_service.store.deliveries import (
    Attempt,
    AttemptOutcome,
    Channel,
    PendingDelivery,
    mark_dead_lettered,
    pending_deliveries,
    record_attempts,
)

EMAIL_QUEUE_NAME = "notifier.email-deliveries"
WEBHOOK_QUEUE_NAME = "notifier.webhook-deliveries"

DELIVERIES = Counter(
    "notifier_deliveries_total",
    "Delivery attempts by channel and outcome (sent, transient, permanent).",
    ["channel", "outcome"],
)
DEAD_LETTERED = Counter(
    "notifier_deliveries_dead_lettered_total",
    "Deliveries still failing after the last retry tier, by channel.",
    ["channel"],
)
SEND_DURATION = Histogram(
    "notifier_delivery_send_duration_seconds",
    "Time to send one email or webhook, by channel (the wait for a free connection included).",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# Exported as 0 from the start: an alert on dead letters growing needs the
# series before the first one (increase() of a missing series is nothing).
for _channel in get_args(Channel):
    DEAD_LETTERED.labels(_channel)

# A permanent failure decided before any send: nothing the server said.
_NOT_SENDABLE = SmtpReply(550)

Send = Callable[[PendingDelivery], Awaitable[SendFailure | None]]


# Batches handled at once per process: one sends while the next is loaded and the
# last one's records commit. More only queue for the same connections while each
# holds its inbox transaction (and a database connection) open.
DELIVERY_PREFETCH = 2


def email_queue(settings: NotifierSettings) -> QueueSpec:
    return QueueSpec(
        EMAIL_QUEUE_NAME,
        (EmailDeliveryV1.routing_key,),
        retry_delays_seconds=settings.delivery_retry_delays_seconds,
        prefetch=DELIVERY_PREFETCH,
    )


def webhook_queue(settings: NotifierSettings) -> QueueSpec:
    return QueueSpec(
        WEBHOOK_QUEUE_NAME,
        (WebhookDeliveryV1.routing_key,),
        retry_delays_seconds=settings.delivery_retry_delays_seconds,
        prefetch=DELIVERY_PREFETCH,
    )


async def _deliver_batch(
    db: Database, channel: Channel, pending: Sequence[PendingDelivery], send: Send, size: int
) -> list[uuid.UUID]:
    """Sends every pending delivery (``size`` at a time), records each; returns those that
    failed transiently."""
    in_flight = asyncio.Semaphore(size)
    recorder = _GroupRecorder(db, channel)

    async def deliver(delivery: PendingDelivery) -> uuid.UUID | None:
        async with in_flight:
            started = time.perf_counter()
            failure = await send(delivery)
            SEND_DURATION.labels(channel).observe(time.perf_counter() - started)
        outcome: AttemptOutcome = "sent"
        if failure is not None:
            outcome = "transient" if failure.transient else "permanent"
        detail = None if failure is None else failure.detail
        await recorder.record(Attempt(delivery.notification_id, outcome, detail))
        DELIVERIES.labels(channel, outcome).inc()
        return delivery.notification_id if outcome == "transient" else None

    # return_exceptions: every send runs to its end and is recorded even if
    # recording another failed (cancelling a send mid-way could send it twice).
    results = await asyncio.gather(*(deliver(d) for d in pending), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if isinstance(r, uuid.UUID)]


async def _retry_or_dead_letter(
    db: Database,
    channel: Channel,
    event: ReceivedEvent[EmailDeliveryV1] | ReceivedEvent[WebhookDeliveryV1],
    failing: list[uuid.UUID],
    tiers: int,
) -> None:
    if not failing:
        return
    if event.attempt >= tiers:
        moved = await mark_dead_lettered(
            db, channel, failing, f"still failing after {event.attempt} retries"
        )
        DEAD_LETTERED.labels(channel).inc(len(moved))
    # The kit retries through the next tier, or dead-letters after the last.
    raise TransientError(f"{len(failing)} {channel} deliveries failed transiently")


class _GroupRecorder:
    """Records outcomes right after their sends, in group commits.

    A send waits until its outcome is committed (it never gets ahead of its
    record). One commit is in progress at a time; the outcomes that arrive
    meanwhile go together in the next one. Under load that is one commit for
    several sends instead of one each (the commit's WAL flush cost more than
    the send); alone, a send is committed at once. A worker killed between a
    server's 250 and the commit may send that email again on redelivery, with
    the same Message-ID: the window is one commit long either way.
    """

    def __init__(self, db: Database, channel: Channel) -> None:
        self._db = db
        self._channel = channel
        self._waiting: list[tuple[Attempt, asyncio.Future[None]]] = []
        self._committing = asyncio.Lock()

    async def record(self, attempt: Attempt) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((attempt, done))
        async with self._committing:
            if not done.done():
                group, self._waiting = self._waiting, []
                failed: BaseException | None = None
                try:
                    await record_attempts(self._db, self._channel, [a for a, _ in group])
                except Exception as exc:
                    failed = exc
                for _, future in group:
                    if failed is None:
                        future.set_result(None)
                    else:
                        future.set_exception(failed)
        await done


def _refused(detail: str) -> SendFailure:
    return SendFailure(_NOT_SENDABLE, detail)


def _outgoing_email(
    delivery: PendingDelivery, token: str | None, frontend_url: str
) -> OutgoingEmail | SendFailure:
    if not delivery.email:
        return _refused("no email address for this user")
    if delivery.active is False and not carries_token(delivery.kind):
        # As the fan-out decides: a deactivated user gets only invitations and resets.
        return _refused("user deactivated")
    if carries_token(delivery.kind) and token is None:
        return _refused("token missing from the delivery command")
    try:
        facts = facts_from_stored(
            delivery.kind,
            delivery.facts,
            # As the fan-out names them: a user without a name is greeted by address.
            recipient_name=(delivery.full_name or "").strip() or delivery.email,
            token=token if carries_token(delivery.kind) else None,
        )
    except (ValueError, TypeError, KeyError):
        return _refused("stored facts unreadable")
    content = texts.email(delivery.kind, facts, frontend_url)
    return OutgoingEmail(
        delivery.notification_id, delivery.email, delivery.full_name or "", content
    )


async def deliver_emails(
    event: ReceivedEvent[EmailDeliveryV1],
    session: AsyncSession,
    *,
    db: Database,
    mailer: SmtpMailer,
    settings: NotifierSettings,
) -> None:
    """Emails the batch's pending notifications (see the module's doc)."""
    tokens = {item.notification_id: item.token for item in event.data.items}
    pending = await pending_deliveries(session, "email", list(tokens))

    async def send(delivery: PendingDelivery) -> SendFailure | None:
        outgoing = _outgoing_email(
            delivery, tokens.get(delivery.notification_id), settings.frontend_url
        )
        if isinstance(outgoing, SendFailure):
            return outgoing
        return await mailer.send(outgoing)

    failing = await _deliver_batch(db, "email", pending, send, mailer.size)
    await _retry_or_dead_letter(
        db, "email", event, failing, len(settings.delivery_retry_delays_seconds)
    )


async def deliver_webhooks(
    event: ReceivedEvent[WebhookDeliveryV1],
    session: AsyncSession,
    *,
    db: Database,
    poster: WebhookPoster,
    settings: NotifierSettings,
) -> None:
    """POSTs the batch's pending notifications to `WEBHOOK_URL` (see the module's doc)."""
    pending = await pending_deliveries(session, "webhook", event.data.notification_ids)

    async def send(delivery: PendingDelivery) -> SendFailure | None:
        return await poster.post(
            WebhookNotification(
                id=delivery.notification_id,
                user_id=delivery.user_id,
                kind=delivery.kind.value,
                title=delivery.title,
                body=delivery.body,
                data=delivery.data,
                created_at=delivery.created_at,
                read_at=delivery.read_at,
            )
        )

    failing = await _deliver_batch(db, "webhook", pending, send, poster.size)
    await _retry_or_dead_letter(
        db, "webhook", event, failing, len(settings.delivery_retry_delays_seconds)
    )


def register_email_deliveries(
    events: EventBroker, *, db: Database, mailer: SmtpMailer, settings: NotifierSettings
) -> EventConsumer:
    consumer = events.consumer(email_queue(settings), db=db, schema=SCHEMA)

    @consumer.handler(EmailDeliveryV1)
    async def on_email_delivery(
        event: ReceivedEvent[EmailDeliveryV1], session: AsyncSession
    ) -> None:
        await deliver_emails(event, session, db=db, mailer=mailer, settings=settings)

    return consumer


def register_webhook_deliveries(
    events: EventBroker, *, db: Database, poster: WebhookPoster, settings: NotifierSettings
) -> EventConsumer:
    consumer = events.consumer(webhook_queue(settings), db=db, schema=SCHEMA)

    @consumer.handler(WebhookDeliveryV1)
    async def on_webhook_delivery(
        event: ReceivedEvent[WebhookDeliveryV1], session: AsyncSession
    ) -> None:
        await deliver_webhooks(event, session, db=db, poster=poster, settings=settings)

    return consumer
