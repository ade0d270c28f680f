"""Consumer of bulk's ``marks.import_chunk`` commands (contract in
:mod:`results_service.contracts.marks_import`).

The kit's consumer claims the message id in the inbox and runs the handler
in that transaction; the chunk's rows, audit, processed-chunk record and its
``marks.import_chunk_result`` answer commit together. Auth being unreachable
is transient (retry tiers); a malformed chunk (bad schema, over 5000 rows) is
dead-lettered; a refused chunk (no such exam, forbidden, published) is
answered, not retried.
"""

from __future__ import annotations

from service_kit.db import Database
from service_kit.messaging.broker import EventBroker
from service_kit.messaging.consumer import EventConsumer, ReceivedEvent
from service_kit.messaging.topology import QueueSpec
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.clients.auth import StudentLookup
from results_service.contracts import IMPORT_CHUNK_ROUTING_KEY, MarkImportChunkV1
from results_service.read_your_writes import RecentWriters
from results_service.settings import SCHEMA
from results_service.usecases.mark_imports import import_mark_chunk

MARK_CHUNKS_QUEUE = QueueSpec("results.mark-import-chunks", (IMPORT_CHUNK_ROUTING_KEY,))


def register_mark_chunks(
    events: EventBroker, *, db: Database, lookup: StudentLookup, writers: RecentWriters
) -> EventConsumer:
    consumer = events.consumer(MARK_CHUNKS_QUEUE, db=db, schema=SCHEMA)

    @consumer.handler(MarkImportChunkV1)
    async def on_import_chunk(
        event: ReceivedEvent[MarkImportChunkV1], session: AsyncSession
    ) -> None:
        answer = await import_mark_chunk(session, lookup, event.data)
        if answer.applied and answer.rows_ok:
            # A hint only (set before our commit): the importer's next list
            # reads go to the primary.
            await writers.mark(event.data.requested_by.user_id)

    return consumer
