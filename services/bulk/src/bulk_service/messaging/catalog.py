"""bulk's event catalog: what it publishes and the queues it reads.

``make docs`` writes docs/asyncapi/bulk.yaml and bulk's section of
docs/events.md from :data:`EVENTS`; ``tests/test_event_contracts.py`` fails
when they differ from the committed files.
"""

from __future__ import annotations

from service_kit.messaging.catalog import EventCatalog, Subscription

from bulk_service.contracts import (
    BulkJobCompletedV1,
    BulkJobRequestedV1,
    MarkImportChunkV1,
    UserImportChunkV1,
)
from bulk_service.messaging.answers import MarkChunkAnsweredV1, UserChunkAnsweredV1
from bulk_service.messaging.consumers import CHUNK_ANSWERS_QUEUE, JOB_COMMANDS_QUEUE
from bulk_service.settings import PRODUCER

EVENTS = EventCatalog(
    service=PRODUCER,
    description="bulk runs import and export jobs: it sends chunks of parsed rows to results "
    "(marks) and auth (users), reads their answers, and announces every job's end.",
    publishes=(BulkJobRequestedV1, BulkJobCompletedV1, MarkImportChunkV1, UserImportChunkV1),
    consumes=(
        Subscription(JOB_COMMANDS_QUEUE, (BulkJobRequestedV1,)),
        Subscription(CHUNK_ANSWERS_QUEUE, (MarkChunkAnsweredV1, UserChunkAnsweredV1)),
    ),
)
