"""Message contracts of the results service: event models on the kit's ``Event``, nothing else.

Other services (bulk, the notifier) import these models to produce and read
the messages results consumes and publishes; nothing here imports the rest of
``results_service``, so depending on it pulls in pydantic and the kit only.
Each model carries its type, version, routing key and producer; the service's
event catalog (:mod:`results_service.messaging.catalog`) lists them for the
generated docs.
"""

from results_service.contracts.marks_changed import MARKS_CHANGED_TYPE, MarksChangedV1
from results_service.contracts.marks_import import (
    IMPORT_CHUNK_RESULT_TYPE,
    IMPORT_CHUNK_ROUTING_KEY,
    IMPORT_CHUNK_TYPE,
    MAX_CHUNK_ROWS,
    ImportMode,
    ImportRowError,
    MarkImportChunkResultV1,
    MarkImportChunkV1,
    MarkImportRow,
    Requester,
)
from results_service.contracts.results_events import (
    RECIPIENTS_PER_CHUNK,
    Recipient,
    ResultsPublishedV1,
    ResultsUpdatedV1,
    UpdatedRecipient,
)

__all__ = [
    "IMPORT_CHUNK_RESULT_TYPE",
    "IMPORT_CHUNK_ROUTING_KEY",
    "IMPORT_CHUNK_TYPE",
    "MARKS_CHANGED_TYPE",
    "MAX_CHUNK_ROWS",
    "RECIPIENTS_PER_CHUNK",
    "ImportMode",
    "ImportRowError",
    "MarkImportChunkResultV1",
    "MarkImportChunkV1",
    "MarkImportRow",
    "MarksChangedV1",
    "Recipient",
    "Requester",
    "ResultsPublishedV1",
    "ResultsUpdatedV1",
    "UpdatedRecipient",
]
