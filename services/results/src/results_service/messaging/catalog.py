"""results' event catalog: what it publishes, the contract it owns for bulk, and its queues.

``make docs`` writes docs/asyncapi/results.yaml and results' section of
docs/events.md from :data:`EVENTS`; ``tests/unit/test_event_contracts.py`` fails when
they differ from the committed files. The queue specs are imported from the
modules that register their handlers, so a queue renamed or rebound there is
renamed or rebound here.
"""

from __future__ import annotations

from service_kit.messaging.catalog import EventCatalog, Subscription

from results_service.contracts import (
    MarkImportChunkResultV1,
    MarkImportChunkV1,
    MarksChangedV1,
    ResultsPublishedV1,
    ResultsUpdatedV1,
)
from results_service.generation.autoregen import AUTOREGEN_QUEUE
from results_service.messaging.auth_events import UserCreatedV1, UserUpdatedV1
from results_service.messaging.mark_chunks import MARK_CHUNKS_QUEUE
from results_service.messaging.user_events import USER_EVENTS_QUEUE
from results_service.settings import PRODUCER

EVENTS = EventCatalog(
    service=PRODUCER,
    description="results publishes when marks change, when results are published or "
    "change after publication, and answers bulk's import chunks; it reads auth's users "
    "into its students read model.",
    publishes=(MarksChangedV1, MarkImportChunkResultV1, ResultsPublishedV1, ResultsUpdatedV1),
    defines=(MarkImportChunkV1,),
    consumes=(
        Subscription(USER_EVENTS_QUEUE, (UserCreatedV1, UserUpdatedV1)),
        Subscription(MARK_CHUNKS_QUEUE, (MarkImportChunkV1,)),
        Subscription(AUTOREGEN_QUEUE, (MarksChangedV1,)),
    ),
)
