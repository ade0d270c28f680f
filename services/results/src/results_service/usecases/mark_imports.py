"""Applying one bulk import chunk (``marks.import_chunk``) and answering it.

Runs in the consumer's transaction (which also holds the message's inbox
claim): the rows, their audit, the processed-chunk record and the answer in
the outbox commit together or not at all.
"""

from __future__ import annotations

from service_kit.errors import ErrorCode, ServiceError
from service_kit.messaging.failures import TransientError
from service_kit.messaging.outbox import add_event
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.clients.auth import StudentLookup
from results_service.contracts import (
    ImportMode,
    ImportRowError,
    MarkImportChunkResultV1,
    MarkImportChunkV1,
)
from results_service.store.mark_imports import processed_chunk_result, save_processed_chunk
from results_service.store.marks import WriteContext
from results_service.usecases.mark_entries import Actor, EntryProblem, MarkInput
from results_service.usecases.marks import BatchOutcome, apply_mark_batch
from results_service.usecases.metrics import IMPORT_ROWS, MARK_ENTRIES
from results_service.usecases.students import resolve_student_numbers

# Chunk-level refusals the answer reports instead of failing the message: a
# retry would be refused the same way, so the job must learn why.
_CHUNK_REFUSALS = (ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN, ErrorCode.EXAM_PUBLISHED)


def _row_error(problem: EntryProblem) -> ImportRowError:
    # The CSV has no status column: AB/EX are written in the mark cell.
    column = "mark" if problem.field == "status" else problem.field
    return ImportRowError(
        row=problem.ref,
        column=column,
        code=problem.code.value,
        message=problem.message,
        value=problem.value,
    )


def _answer(chunk: MarkImportChunkV1, outcome: BatchOutcome) -> MarkImportChunkResultV1:
    return MarkImportChunkResultV1(
        job_id=chunk.job_id,
        chunk_no=chunk.chunk_no,
        exam_id=chunk.exam_id,
        dry_run=chunk.dry_run,
        applied=outcome.applied,
        rows_ok=outcome.written,
        rows_unchanged=outcome.unchanged,
        rows_failed=outcome.failed,
        errors=[_row_error(p) for p in outcome.problems],
        marks_version=outcome.marks_version,
    )


def _refusal(chunk: MarkImportChunkV1, exc: ServiceError) -> MarkImportChunkResultV1:
    return MarkImportChunkResultV1(
        job_id=chunk.job_id,
        chunk_no=chunk.chunk_no,
        exam_id=chunk.exam_id,
        dry_run=chunk.dry_run,
        applied=False,
        rows_ok=0,
        rows_unchanged=0,
        rows_failed=len(chunk.rows),
        errors=[ImportRowError(row=0, column="", code=exc.code.value, message=exc.message)],
    )


async def _send_answer(session: AsyncSession, answer: MarkImportChunkResultV1) -> None:
    await add_event(session, answer)


async def import_mark_chunk(
    session: AsyncSession, lookup: StudentLookup, chunk: MarkImportChunkV1
) -> MarkImportChunkResultV1:
    """Applies the chunk once per (job, chunk) and writes its answer to the outbox.

    A chunk seen before is not applied again; its stored answer is sent again.
    """
    stored = await processed_chunk_result(session, chunk.job_id, chunk.chunk_no)
    if stored is not None:
        answer = MarkImportChunkResultV1.model_validate(stored)
        await _send_answer(session, answer)
        return answer
    entries = [
        MarkInput(r.row, r.student_number.strip(), r.subject_code.strip(), r.status, r.mark)
        for r in chunk.rows
    ]
    student_ids = await resolve_student_numbers(
        session, lookup, {e.student_number for e in entries}
    )
    actor = Actor(chunk.requested_by.user_id, chunk.requested_by.role)
    try:
        outcome = await apply_mark_batch(
            session,
            exam_id=chunk.exam_id,
            entries=entries,
            student_ids=student_ids,
            actor=actor,
            ctx=WriteContext(
                changed_by=actor.user_id, source="import", reason=chunk.reason, job_id=chunk.job_id
            ),
            partial=chunk.mode == ImportMode.PARTIAL,
            dry_run=chunk.dry_run,
        )
    except ServiceError as exc:
        if exc.code not in _CHUNK_REFUSALS:
            raise
        answer = _refusal(chunk, exc)
    else:
        answer = _answer(chunk, outcome)
    if not await save_processed_chunk(
        session, chunk.job_id, chunk.chunk_no, chunk.exam_id, answer.model_dump(mode="json")
    ):
        # A twin of this chunk (another message id) committed while we worked:
        # roll ours back; the retry finds the twin's answer and sends it.
        raise TransientError(f"chunk {chunk.job_id}/{chunk.chunk_no} was applied concurrently")
    await _send_answer(session, answer)
    _count_rows(chunk, answer)
    return answer


def _count_rows(chunk: MarkImportChunkV1, answer: MarkImportChunkResultV1) -> None:
    # Counted before the consumer commits: a chunk that then rolls back and is
    # retried counts twice. Good enough for rates; the audit is the record.
    mode = "dry_run" if chunk.dry_run else chunk.mode.value
    if answer.errors and answer.errors[0].row == 0:
        IMPORT_ROWS.labels(mode, "refused").inc(len(chunk.rows))
        return
    IMPORT_ROWS.labels(mode, "ok").inc(answer.rows_ok)
    IMPORT_ROWS.labels(mode, "unchanged").inc(answer.rows_unchanged)
    IMPORT_ROWS.labels(mode, "failed").inc(answer.rows_failed)
    if answer.applied:
        MARK_ENTRIES.labels("import", "written").inc(answer.rows_ok)
        MARK_ENTRIES.labels("import", "unchanged").inc(answer.rows_unchanged)
        MARK_ENTRIES.labels("import", "failed").inc(answer.rows_failed)
