"""Moving a job on once the answers of its stage are in, and ending it.

Both the worker (after its last send, or after a cancel) and the answer
consumer (after each answer) call :func:`settle` with the job's row locked,
so whichever comes last moves the job on, exactly once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from service_kit.messaging.outbox import add_event
from sqlalchemy.ext.asyncio import AsyncSession

from bulk_service.contracts import BulkJobCompletedV1, BulkJobRequestedV1
from bulk_service.domain.jobs import Job, JobError, JobStatus, Stage, final_status
from bulk_service.jobs.metrics import JOB_DURATION, JOBS_FINISHED
from bulk_service.store import jobs as jobs_store
from bulk_service.store import staging


async def settle(session: AsyncSession, job: Job) -> Job:
    """Moves a job whose stage awaits answers on when every answer is in; else leaves it."""
    if job.status.finished or job.chunks_total is None:
        return job
    if job.chunks_answered < job.chunks_total:
        return job
    if job.stage is Stage.AWAITING_CHECK:
        if job.rows_failed and job.error_code is None:
            return await finish(
                session,
                job,
                error=(
                    JobError.ROWS_INVALID,
                    f"{job.rows_failed} entries are invalid, so none was applied "
                    "(all_or_nothing); the errors file lists them.",
                ),
            )
        if job.cancel_requested or job.error_code is not None:
            return await finish(session, job)
        job = await jobs_store.update_job(
            session, job.id, stage=Stage.APPLYING.value, chunks_sent=0, chunks_answered=0
        )
        await add_event(session, BulkJobRequestedV1(job_id=job.id, kind=job.kind.value))
        return job
    if job.stage is Stage.WAITING:
        return await finish(session, job)
    return job


async def finish(session: AsyncSession, job: Job, *, error: tuple[str, str] | None = None) -> Job:
    """Ends the job (status from its counts, or failed with ``error``), drops its staged
    entries and tells whoever listens (``bulk.job.completed``), in the caller's transaction."""
    values: dict[str, object] = {
        "stage": Stage.DONE.value,
        "progress": 1,
        "finished_at": datetime.now(UTC),
        "lease_owner": None,
        "lease_until": None,
    }
    if error is not None:
        values["error_code"], values["error_message"] = error
    job = await jobs_store.update_job(session, job.id, **values)
    status = final_status(job)
    job = await jobs_store.update_job(session, job.id, status=status.value)
    await staging.clear_staging(session, job.id)
    await add_event(session, completed_event(job))
    JOBS_FINISHED.labels(job.kind.value, status.value).inc()
    if job.finished_at is not None:
        JOB_DURATION.labels(job.kind.value, status.value).observe(
            (job.finished_at - job.created_at).total_seconds()
        )
    return job


def completed_event(job: Job) -> BulkJobCompletedV1:
    assert job.finished_at is not None and job.status is not JobStatus.RUNNING
    return BulkJobCompletedV1(
        job_id=job.id,
        kind=job.kind.value,
        status=job.status.value,
        created_by=job.created_by,
        exam_id=job.exam_id,
        dry_run=job.dry_run,
        format=job.format.value,
        rows_total=job.rows_total,
        rows_ok=job.rows_ok,
        rows_unchanged=job.rows_unchanged,
        rows_failed=job.rows_failed,
        error_code=job.error_code,
        finished_at=job.finished_at,
    )


async def fail_job(session: AsyncSession, job_id: uuid.UUID, code: str, message: str) -> Job | None:
    """Fails an unfinished job as a whole (a file that cannot be read, an exam gone...)."""
    job = await jobs_store.get_job(session, job_id, lock=True)
    if job is None or job.status.finished:
        return job
    return await finish(session, job, error=(code, message))
