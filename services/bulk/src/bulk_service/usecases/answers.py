"""Taking in one chunk's answer: counts, errors, progress, and the job's next step.

Runs in the consumer's transaction (with the message's inbox claim). An
answer is taken once per (job, chunk, dry run): the chunk's row is marked
answered in the same transaction, so an answer delivered again, or answered
twice after a resend, changes nothing.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from bulk_service.domain.jobs import READING_SHARE, Job, Stage
from bulk_service.domain.row_errors import RowError
from bulk_service.jobs.metrics import IMPORT_ROWS
from bulk_service.messaging.answers import ChunkAnswer
from bulk_service.store import jobs as jobs_store
from bulk_service.store import staging
from bulk_service.usecases.settle import settle


def _progress(job: Job, answered: int) -> Decimal:
    """Reading takes the first share; sending and answers the rest (all_or_nothing:
    its check the first half of that, applying the second)."""
    total = job.chunks_total or 0
    share = Decimal(answered) / Decimal(total) if total else Decimal(1)
    rest = 1 - READING_SHARE
    if job.all_or_nothing and not job.dry_run:
        rest = rest / 2
        base = (
            READING_SHARE
            if job.stage in (Stage.CHECKING, Stage.AWAITING_CHECK)
            else (READING_SHARE + rest)
        )
    else:
        base = READING_SHARE
    return min(Decimal(1), base + rest * share).quantize(Decimal("0.0001"))


async def take_answer(session: AsyncSession, answer: ChunkAnswer) -> Job | None:
    job = await jobs_store.get_job(session, answer.job_id, lock=True)
    if job is None or job.status.finished:
        return job  # a late answer of a finished (or purged) job: nothing left to count
    if not await staging.answer_chunk(
        session,
        job.id,
        answer.chunk_no,
        dry_run=answer.dry_run,
        rows_ok=answer.rows_ok,
        rows_unchanged=answer.rows_unchanged,
        rows_failed=answer.rows_failed,
    ):
        return job
    whole_chunk = next((e for e in answer.errors if e.row == 0), None)
    row_errors = [
        RowError(row=e.row, column=e.column, code=e.code, message=e.message, value=e.value)
        for e in answer.errors
        if e.row > 0
    ]
    await staging.add_errors(session, job.id, row_errors)
    checking = answer.dry_run and not job.dry_run
    values: dict[str, object] = {
        "chunks_answered": job.chunks_answered + 1,
        "rows_failed": job.rows_failed + answer.rows_failed,
        "progress": _progress(job, job.chunks_answered + 1),
    }
    if not checking:
        values["rows_ok"] = job.rows_ok + answer.rows_ok
        values["rows_unchanged"] = job.rows_unchanged + answer.rows_unchanged
        IMPORT_ROWS.labels(job.kind.value, "ok").inc(answer.rows_ok)
        IMPORT_ROWS.labels(job.kind.value, "unchanged").inc(answer.rows_unchanged)
    IMPORT_ROWS.labels(job.kind.value, "failed").inc(answer.rows_failed)
    if whole_chunk is not None and job.error_code is None:
        # Refused as a whole (no such exam, not allowed, published): every
        # chunk would be, so no more go out and the job fails with the reason.
        values["error_code"] = whole_chunk.code
        values["error_message"] = whole_chunk.message or whole_chunk.code
    job = await jobs_store.update_job(session, job.id, **values)
    return await settle(session, job)
