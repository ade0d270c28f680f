"""The events that notify someone: results published or updated, a job done, an
invitation, a password reset. Each handler names the cause and its recipients and
hands them to the fan-out (:mod:`notifier_service.usecases.notify`), inside the
kit's inbox transaction: a message is applied once, and a cause notifies a user
once even when its event comes again under another message id.
"""

from __future__ import annotations

from service_kit.db import Database
from service_kit.messaging.broker import EventBroker
from service_kit.messaging.consumer import EventConsumer, ReceivedEvent
from service_kit.messaging.topology import QueueSpec
from sqlalchemy.ext.asyncio import AsyncSession

from notifier_service.clients.auth import UserLookup
from notifier_service.domain import causes
from notifier_service.domain.facts import (
    AccountInvited,
    ExportReady,
    ImportFinished,
    PasswordReset,
    ResultsPublished,
    ResultsUpdated,
)
from notifier_service.domain.kinds import NotificationKind as Kind
from notifier_service.messaging.readers import (
    BulkJobCompletedV1,
    PasswordResetRequestedV1,
    ResultsPublishedV1,
    ResultsUpdatedV1,
    UserInvitedV1,
)
from notifier_service.messaging.users import user_record
from notifier_service.settings import SCHEMA
from notifier_service.store.users import upsert_users
from notifier_service.usecases.notify import Channels, Intent, notify

CAUSES_QUEUE = QueueSpec(
    "notifier.causes",
    (
        ResultsPublishedV1.routing_key,
        ResultsUpdatedV1.routing_key,
        BulkJobCompletedV1.routing_key,
        UserInvitedV1.routing_key,
        PasswordResetRequestedV1.routing_key,
    ),
)

_NAME_LATER = ""
"""The recipient's name is filled in by the fan-out from the users read model."""


def published_intents(data: ResultsPublishedV1) -> list[Intent]:
    cause = causes.results_published(data.exam_id)
    facts = ResultsPublished(_NAME_LATER, data.exam_id, data.exam_code, data.exam_name)
    return [Intent(r.student_id, Kind.RESULTS_PUBLISHED, cause, facts) for r in data.recipients]


def updated_intents(data: ResultsUpdatedV1) -> list[Intent]:
    cause = causes.results_updated(data.exam_id, data.generation)
    return [
        Intent(
            r.student_id,
            Kind.RESULTS_UPDATED,
            cause,
            ResultsUpdated(_NAME_LATER, data.exam_id, data.exam_code, data.exam_name, r.change),
        )
        for r in data.recipients
    ]


def job_intents(data: BulkJobCompletedV1) -> list[Intent]:
    cause = causes.job_completed(data.job_id)
    if data.kind == "results_export":
        if data.status != "succeeded":
            # An export that failed or was cancelled has no file to fetch; its
            # creator sees the job's status on the page they started it from.
            return []
        facts_export = ExportReady(_NAME_LATER, data.job_id, data.format, data.rows_ok)
        return [Intent(data.created_by, Kind.EXPORT_READY, cause, facts_export)]
    facts_import = ImportFinished(
        _NAME_LATER,
        data.job_id,
        data.kind,
        data.status,
        data.dry_run,
        data.rows_total,
        data.rows_ok,
        data.rows_unchanged,
        data.rows_failed,
        data.error_code,
    )
    return [Intent(data.created_by, Kind.IMPORT_FINISHED, cause, facts_import)]


def register_causes(
    events: EventBroker, *, db: Database, lookup: UserLookup, channels: Channels
) -> EventConsumer:
    consumer = events.consumer(CAUSES_QUEUE, db=db, schema=SCHEMA)

    @consumer.handler(ResultsPublishedV1)
    async def on_published(event: ReceivedEvent[ResultsPublishedV1], session: AsyncSession) -> None:
        await notify(session, published_intents(event.data), lookup=lookup, channels=channels)

    @consumer.handler(ResultsUpdatedV1)
    async def on_updated(event: ReceivedEvent[ResultsUpdatedV1], session: AsyncSession) -> None:
        await notify(session, updated_intents(event.data), lookup=lookup, channels=channels)

    @consumer.handler(BulkJobCompletedV1)
    async def on_job(event: ReceivedEvent[BulkJobCompletedV1], session: AsyncSession) -> None:
        await notify(session, job_intents(event.data), lookup=lookup, channels=channels)

    @consumer.handler(UserInvitedV1)
    async def on_invited(event: ReceivedEvent[UserInvitedV1], session: AsyncSession) -> None:
        data = event.data
        await upsert_users(session, [user_record(data)])
        intent = Intent(
            data.id,
            Kind.ACCOUNT_INVITED,
            causes.invitation(data.token),
            AccountInvited(_NAME_LATER, data.token, data.expires_at),
            token=data.token,
        )
        await notify(session, [intent], lookup=lookup, channels=channels)

    @consumer.handler(PasswordResetRequestedV1)
    async def on_reset(
        event: ReceivedEvent[PasswordResetRequestedV1], session: AsyncSession
    ) -> None:
        data = event.data
        # Not newer than what the read model holds, as a rule; it may be the first
        # word of this user the notifier hears.
        await upsert_users(session, [user_record(data)])
        intent = Intent(
            data.id,
            Kind.PASSWORD_RESET,
            causes.password_reset(data.token),
            PasswordReset(_NAME_LATER, data.token, data.expires_at),
            token=data.token,
        )
        await notify(session, [intent], lookup=lookup, channels=channels)

    return consumer
