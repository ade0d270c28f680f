"""Creating jobs (uploads streamed into Postgres, exports), reading and cancelling them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

from service_kit.db import Database
from service_kit.detail_codes import DetailCode
from service_kit.errors import Conflict, ErrorDetail, NotFound, ValidationFailed
from service_kit.messaging.outbox import add_event
from service_kit.security import Principal

from bulk_service.contracts import BulkJobRequestedV1
from bulk_service.domain.jobs import (
    CancelRefused,
    FileFormat,
    ImportMode,
    Job,
    JobKind,
    JobStatus,
    Stage,
    cancellation,
)
from bulk_service.store import files
from bulk_service.store import jobs as jobs_store
from bulk_service.usecases.settle import finish

MAX_FILE_NAME = 255


@dataclass(frozen=True, slots=True)
class NewJob:
    kind: JobKind
    format: FileFormat
    exam_id: uuid.UUID | None = None
    dry_run: bool = False
    mode: ImportMode | None = None
    file_name: str | None = None
    idempotency_key: str | None = None


def _values(new: NewJob, caller: Principal, job_id: uuid.UUID) -> dict[str, object]:
    return {
        "id": job_id,
        "kind": new.kind.value,
        "status": JobStatus.QUEUED.value,
        "stage": (Stage.EXPORTING if new.kind is JobKind.RESULTS_EXPORT else Stage.READING).value,
        "exam_id": new.exam_id,
        "dry_run": new.dry_run,
        "mode": new.mode.value if new.mode else None,
        "format": new.format.value,
        "file_name": (new.file_name or "")[:MAX_FILE_NAME] or None,
        "created_by": caller.user_id,
        "created_by_role": caller.role,
        "idempotency_key": new.idempotency_key,
    }


async def existing_job(db: Database, caller: Principal, key: str | None) -> Job | None:
    """The job an earlier request with this Idempotency-Key made, if any."""
    if key is None:
        return None
    async with db.read_session(fresh=True) as session:
        return await jobs_store.job_by_key(session, caller.user_id, key)


async def create_upload_job(
    db: Database, caller: Principal, new: NewJob, chunks: AsyncIterator[bytes], part_bytes: int
) -> tuple[Job, bool]:
    """Stores the upload as it streams in and queues its job, in one transaction: a
    request that fails halfway (too large, cut off) leaves nothing behind.
    Returns the job and whether it is new (False: the Idempotency-Key's job)."""
    async with db.transaction() as session:
        job = await jobs_store.insert_job(session, _values(new, caller, uuid.uuid4()))
        if job is None:  # the Idempotency-Key names a job already
            assert new.idempotency_key is not None
            # A replay must itself be an upload: it is read through (the reader
            # refuses what is malformed, too large or has no file) before the
            # key's job is the answer, and nothing of it is kept.
            size = 0
            async for chunk in chunks:
                size += len(chunk)
            _require_bytes(size)
            found = await jobs_store.job_by_key(session, caller.user_id, new.idempotency_key)
            assert found is not None
            return found, False
        writer = files.PartWriter(session, job.id, files.UPLOAD, part_bytes)
        async for chunk in chunks:
            await writer.write(chunk)
        await writer.close()
        _require_bytes(writer.size)
        job = await jobs_store.update_job(session, job.id, file_bytes=writer.size)
        await add_event(session, BulkJobRequestedV1(job_id=job.id, kind=job.kind.value))
        return job, True


def _require_bytes(size: int) -> None:
    if size == 0:
        raise ValidationFailed(
            "The file is empty.",
            details=[ErrorDetail("file", DetailCode.REQUIRED, "the file has no bytes")],
        )


async def create_export_job(db: Database, caller: Principal, new: NewJob) -> tuple[Job, bool]:
    async with db.transaction() as session:
        job = await jobs_store.insert_job(session, _values(new, caller, uuid.uuid4()))
        if job is None:
            assert new.idempotency_key is not None
            found = await jobs_store.job_by_key(session, caller.user_id, new.idempotency_key)
            assert found is not None
            return found, False
        await add_event(session, BulkJobRequestedV1(job_id=job.id, kind=job.kind.value))
        return job, True


async def visible_job(db: Database, caller: Principal, job_id: uuid.UUID) -> Job:
    """The job, if the caller may see it (its creator, an admin); 404 otherwise."""
    async with db.read_session(fresh=True) as session:
        job = await jobs_store.get_job(session, job_id)
    if job is None or not job.visible_to(caller.user_id, caller.role):
        raise NotFound("No such job.")
    return job


async def cancel_job(db: Database, caller: Principal, job_id: uuid.UUID) -> Job:
    async with db.transaction() as session:
        job = await jobs_store.get_job(session, job_id, lock=True)
        if job is None or not job.visible_to(caller.user_id, caller.role):
            raise NotFound("No such job.")
        try:
            now = cancellation(job)
        except CancelRefused as exc:
            raise Conflict(str(exc)) from exc
        job = await jobs_store.update_job(session, job.id, cancel_requested=True)
        if now is JobStatus.CANCELLED:
            job = await finish(session, job)
        # Else the worker sends no more chunks, and the answers of those that
        # went out end the job as cancelled (their counts say what was applied).
        return job


def download_name(job: Job, exam_code: str | None) -> str:
    stamp = (job.finished_at or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    base = f"results-{exam_code}" if exam_code else f"results-{job.exam_id}"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in base)
    return f"{safe}-{stamp}.{job.format.extension}"
