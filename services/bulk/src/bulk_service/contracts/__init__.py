"""The events bulk writes to its outbox (its own, and the commands it sends to results and auth)."""

from bulk_service.contracts.chunks import (
    MarkChunkRow,
    MarkImportChunkV1,
    Requester,
    UserChunkRow,
    UserImportChunkV1,
)
from bulk_service.contracts.jobs import BulkJobCompletedV1, BulkJobRequestedV1

__all__ = [
    "BulkJobCompletedV1",
    "BulkJobRequestedV1",
    "MarkChunkRow",
    "MarkImportChunkV1",
    "Requester",
    "UserChunkRow",
    "UserImportChunkV1",
]
