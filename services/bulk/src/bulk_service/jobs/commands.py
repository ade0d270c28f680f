"""The chunk command of each import kind, built from staged payloads.

Payloads were validated when they were staged, so the models are built
without validating again (``model_construct``): 5,000 entries a chunk, a
couple of hundred chunks for a big file.
"""

from __future__ import annotations

from typing import Any

from service_kit.messaging.events import Event

from bulk_service.contracts import (
    MarkChunkRow,
    MarkImportChunkV1,
    Requester,
    UserChunkRow,
    UserImportChunkV1,
)
from bulk_service.domain.jobs import ImportMode, Job, JobKind


def chunk_command(job: Job, chunk_no: int, dry_run: bool, payloads: list[dict[str, Any]]) -> Event:
    requester = Requester(user_id=job.created_by, role=job.created_by_role)
    common: dict[str, Any] = {
        "job_id": job.id,
        "chunk_no": chunk_no,
        "mode": (job.mode or ImportMode.PARTIAL).value,
        "dry_run": dry_run,
        "requested_by": requester,
    }
    if job.kind is JobKind.MARKS_IMPORT:
        rows = [MarkChunkRow.model_construct(**p) for p in payloads]
        common.update(exam_id=job.exam_id, reason=None, rows=rows)
        return MarkImportChunkV1.model_construct(**common)
    if job.kind is JobKind.USERS_IMPORT:
        users = [UserChunkRow.model_construct(**p) for p in payloads]
        return UserImportChunkV1.model_construct(**common, rows=users)
    raise ValueError(f"{job.kind} sends no chunks")
