"""The fan-out: turn one cause into one notification per recipient, set-based.

Runs inside the consumer's inbox transaction, so the notifications, their
pending deliveries, the delivery commands (outbox) and the stream signal
(NOTIFY) commit together with the message's inbox row, or not at all: a
notifier killed mid-fan-out leaves nothing, the message comes back, and the
(user, cause) key lets through only what is new. A chunk of 500 students is
a handful of statements, never one transaction per notification.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import Counter
from service_kit.messaging.outbox import add_event
from sqlalchemy.ext.asyncio import AsyncSession

from notifier_service.clients.auth import UserLookup
from notifier_service.contracts.deliveries import EmailDeliveryV1, EmailItem, WebhookDeliveryV1
from notifier_service.domain.facts import Facts, stored_facts
from notifier_service.domain.kinds import NotificationKind, carries_token, should_email
from notifier_service.domain.texts import in_app
from notifier_service.store import notifications as store
from notifier_service.store.users import UserRecord, email_opt_outs, upsert_users, users_by_id
from notifier_service.streams.signals import announce_new

log = logging.getLogger(__name__)

NOTIFICATIONS_CREATED = Counter(
    "notifier_notifications_created_total",
    "Notifications stored, by kind (a redelivered cause adds none).",
    ["kind"],
)
RECIPIENTS_UNKNOWN = Counter(
    "notifier_recipients_unknown_total",
    "Recipients neither the read model nor auth knows, by kind (nothing stored for them).",
    ["kind"],
)
for _kind in NotificationKind:
    RECIPIENTS_UNKNOWN.labels(_kind.value)  # exported at 0 before the first


@dataclass(frozen=True, slots=True)
class Intent:
    """Tell ``user_id`` about ``cause``; ``facts`` get the user's name when it is known."""

    user_id: uuid.UUID
    kind: NotificationKind
    cause: str
    facts: Facts
    token: str | None = dataclasses.field(default=None, repr=False)
    """The invitation or reset token, for the email only (never stored)."""


@dataclass(frozen=True, slots=True)
class Channels:
    """Which outward channels are on, and how many notifications go per delivery message."""

    email: bool
    webhook: bool
    batch_size: int


@dataclass(frozen=True, slots=True)
class FanOut:
    created: int
    already_there: int
    unknown_users: int


async def notify(
    session: AsyncSession,
    intents: Sequence[Intent],
    *,
    lookup: UserLookup,
    channels: Channels,
) -> FanOut:
    """Stores one notification per (user, cause) that is new, and asks for its deliveries."""
    if not intents:
        return FanOut(0, 0, 0)
    users = await _known_users(session, {i.user_id for i in intents}, lookup)
    rows: list[store.NewRow] = []
    wanted: dict[uuid.UUID, Intent] = {}
    unknown = 0
    for intent in intents:
        user = users.get(intent.user_id)
        if user is None:
            unknown += 1
            RECIPIENTS_UNKNOWN.labels(intent.kind.value).inc()
            continue
        facts = dataclasses.replace(intent.facts, recipient_name=_name_of(user))
        shown = in_app(intent.kind, facts)
        row = store.NewRow(
            id=uuid.uuid4(),
            user_id=user.id,
            kind=intent.kind.value,
            cause=intent.cause,
            title=shown.title,
            body=shown.body,
            data=dict(shown.data),
            facts=stored_facts(facts),
        )
        rows.append(row)
        wanted[row.id] = intent
    if unknown:
        log.warning("%d recipient(s) of %s are unknown to auth: skipped", unknown, intents[0].kind)
    inserted = await store.insert_new(session, rows)
    if inserted:
        await _ask_for_deliveries(session, inserted, wanted, users, channels)
        await announce_new(session, [i.seq for i in inserted])
        for intent in (wanted[i.id] for i in inserted):
            NOTIFICATIONS_CREATED.labels(intent.kind.value).inc()
    return FanOut(len(inserted), len(rows) - len(inserted), unknown)


def _name_of(user: UserRecord) -> str:
    return user.full_name.strip() or user.email


async def _known_users(
    session: AsyncSession, ids: set[uuid.UUID], lookup: UserLookup
) -> dict[uuid.UUID, UserRecord]:
    """The users of ``ids``, from the read model or, for those it lacks, from auth."""
    users = await users_by_id(session, ids)
    missing = ids - users.keys()
    if missing:
        found = await lookup.find(missing)
        await upsert_users(session, found)
        users.update({u.id: u for u in found})
    return users


async def _ask_for_deliveries(
    session: AsyncSession,
    inserted: Sequence[store.Inserted],
    wanted: dict[uuid.UUID, Intent],
    users: dict[uuid.UUID, UserRecord],
    channels: Channels,
) -> None:
    if channels.email:
        opted_out = await email_opt_outs(session, {i.user_id for i in inserted})
        emailed = [
            i
            for i in inserted
            if _emails(wanted[i.id].kind, users[i.user_id], opted_out=i.user_id in opted_out)
        ]
        await store.add_pending_deliveries(session, "email", [i.id for i in emailed])
        for batch in _batches(emailed, channels.batch_size):
            items = [EmailItem(notification_id=i.id, token=wanted[i.id].token) for i in batch]
            await add_event(session, EmailDeliveryV1(items=items))
    if channels.webhook:
        await store.add_pending_deliveries(session, "webhook", [i.id for i in inserted])
        for batch in _batches(list(inserted), channels.batch_size):
            await add_event(session, WebhookDeliveryV1(notification_ids=[i.id for i in batch]))


def _emails(kind: NotificationKind, user: UserRecord, *, opted_out: bool) -> bool:
    # An invitation or a reset goes to an inactive (invited) account too: the email
    # is how it becomes active. Anything else is not emailed to a deactivated user.
    if carries_token(kind):
        return True
    return user.active and should_email(kind, email_preference=not opted_out)


def _batches(items: list[store.Inserted], size: int) -> list[list[store.Inserted]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
