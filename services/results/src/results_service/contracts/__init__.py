"""Message contracts of the results service: pure pydantic, no service dependencies.

Other services (bulk) import these models to produce and read the messages
results consumes and publishes; nothing here imports the rest of
``results_service``, so depending on it pulls in pydantic only.
"""

from results_service.contracts.marks_changed import (
    MARKS_CHANGED_TYPE,
    MARKS_CHANGED_VERSION,
    MarksChangedV1,
)
from results_service.contracts.marks_import import (
    IMPORT_CHUNK_RESULT_TYPE,
    IMPORT_CHUNK_RESULT_VERSION,
    IMPORT_CHUNK_ROUTING_KEY,
    IMPORT_CHUNK_TYPE,
    IMPORT_CHUNK_VERSION,
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
    RESULTS_PUBLISHED_TYPE,
    RESULTS_PUBLISHED_VERSION,
    RESULTS_UPDATED_TYPE,
    RESULTS_UPDATED_VERSION,
    Recipient,
    ResultsPublishedV1,
    ResultsUpdatedV1,
    UpdatedRecipient,
)

__all__ = [
    "IMPORT_CHUNK_RESULT_TYPE",
    "IMPORT_CHUNK_RESULT_VERSION",
    "IMPORT_CHUNK_ROUTING_KEY",
    "IMPORT_CHUNK_TYPE",
    "IMPORT_CHUNK_VERSION",
    "MARKS_CHANGED_TYPE",
    "MARKS_CHANGED_VERSION",
    "MAX_CHUNK_ROWS",
    "RECIPIENTS_PER_CHUNK",
    "RESULTS_PUBLISHED_TYPE",
    "RESULTS_PUBLISHED_VERSION",
    "RESULTS_UPDATED_TYPE",
    "RESULTS_UPDATED_VERSION",
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
