"""bulk's queues: its own job commands, and the answers to its chunks."""

from __future__ import annotations

from service_kit.db import Database
from service_kit.messaging.broker import EventBroker
from service_kit.messaging.consumer import EventConsumer, ReceivedEvent
from service_kit.messaging.topology import QueueSpec
from sqlalchemy.ext.asyncio import AsyncSession

from bulk_service.contracts import BulkJobRequestedV1
from bulk_service.jobs.runner import JobRunner
from bulk_service.messaging.answers import MarkChunkAnsweredV1, UserChunkAnsweredV1
from bulk_service.settings import SCHEMA
from bulk_service.usecases.answers import take_answer

JOB_COMMANDS_QUEUE = QueueSpec("bulk.job-commands", (BulkJobRequestedV1.routing_key,))
CHUNK_ANSWERS_QUEUE = QueueSpec(
    "bulk.chunk-answers", (MarkChunkAnsweredV1.routing_key, UserChunkAnsweredV1.routing_key)
)


def register_job_commands(events: EventBroker, *, db: Database, runner: JobRunner) -> EventConsumer:
    consumer = events.consumer(JOB_COMMANDS_QUEUE, db=db, schema=SCHEMA)

    @consumer.handler(BulkJobRequestedV1)
    async def on_job_requested(
        event: ReceivedEvent[BulkJobRequestedV1], session: AsyncSession
    ) -> None:
        # The job runs in a task of its own, under a lease; acknowledging the
        # command does not wait for it. A job this worker cannot take now (all
        # slots busy, or another holds it) is the sweep's to find.
        await runner.take(event.data.job_id)

    return consumer


def register_chunk_answers(events: EventBroker, *, db: Database) -> EventConsumer:
    consumer = events.consumer(CHUNK_ANSWERS_QUEUE, db=db, schema=SCHEMA)

    @consumer.handler(MarkChunkAnsweredV1)
    async def on_marks_answer(
        event: ReceivedEvent[MarkChunkAnsweredV1], session: AsyncSession
    ) -> None:
        await take_answer(session, event.data)

    @consumer.handler(UserChunkAnsweredV1)
    async def on_users_answer(
        event: ReceivedEvent[UserChunkAnsweredV1], session: AsyncSession
    ) -> None:
        await take_answer(session, event.data)

    return consumer
