"""Applying one bulk import chunk (``marks.import_chunk``) and answering it.

Runs in the consumer's transaction (which also holds the message's inbox
claim): the rows, their audit, the processed-chunk record and the answer in
the outbox commit together or not at all.

A chunk is applied set-based (ADR 0017): its rows go to Postgres as arrays
and ONE statement (:func:`~results_service.store.mark_imports.apply_chunk_rows`)
validates them, writes the valid changed ones with their audit and counts;
only the invalid rows come back, and their problems are told by the same
:func:`~results_service.usecases.mark_entries.entry_problems` as the API's, so
codes and messages are those of ``PUT /exams/{id}/marks``.
"""

from __future__ import annotations

from decimal import Decimal

from service_kit.errors import ErrorCode, NotFound, ServiceError
from service_kit.messaging.failures import TransientError
from service_kit.messaging.outbox import add_event
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.clients.auth import StudentLookup
from results_service.contracts import (
    ImportMode,
    ImportRowError,
    MarkImportChunkResultV1,
    MarkImportChunkV1,
    MarksChangedV1,
)
from results_service.domain import Subject
from results_service.domain.decimal_math import has_at_most_two_decimals
from results_service.store.exams import bump_marks_version, get_exam
from results_service.store.mark_imports import (
    ChunkRows,
    apply_chunk_rows,
    processed_chunk_result,
    save_processed_chunk,
)
from results_service.store.marks import WriteContext
from results_service.usecases.mark_entries import (
    Actor,
    EntryProblem,
    MarkInput,
    authorize_mark_write,
    entry_problems,
    exam_subjects,
)
from results_service.usecases.marks import BatchOutcome
from results_service.usecases.metrics import IMPORT_ROWS, MARK_ENTRIES
from results_service.usecases.students import look_up_unknown_students

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
    rows = _columns(chunk)
    await look_up_unknown_students(session, lookup, rows.student_numbers)
    try:
        outcome = await _apply_rows(session, chunk, rows)
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


# A mark whose digits or exponent go past these is sent to SQL only if Python
# finds it valid (then as its exact two-decimal value): Postgres' numeric
# cannot hold every Decimal (``1E+1000000``), and such a mark is rare.
_PLAIN_DIGITS = 20
_PLAIN_EXPONENT = 20
_CENTS = Decimal("0.01")
_FAR_BEYOND_ANY_MAX = Decimal(10) ** 6  # max_mark is numeric(7, 2)


def _sql_mark(mark: Decimal | None) -> tuple[Decimal | None, bool]:
    """(the mark as the statement compares it, refused already)."""
    if mark is None:
        return None, False
    _sign, digits, exponent = mark.as_tuple()
    if (
        isinstance(exponent, int)
        and len(digits) <= _PLAIN_DIGITS
        and -_PLAIN_EXPONENT <= exponent <= _PLAIN_EXPONENT
    ):
        return mark, False
    small = mark.is_finite() and mark.copy_abs() < _FAR_BEYOND_ANY_MAX  # no context rounding
    if small and has_at_most_two_decimals(mark):
        return mark.quantize(_CENTS), False
    # Certainly invalid (not a number, too many decimals, or out of any range):
    # the row's problems are told by the domain's rules from the real value.
    return None, True


def _columns(chunk: MarkImportChunkV1) -> ChunkRows:
    numbers: list[str] = []
    codes: list[str] = []
    statuses: list[str] = []
    marks: list[Decimal | None] = []
    refused: list[bool] = []
    for r in chunk.rows:
        numbers.append(r.student_number.strip())
        codes.append(r.subject_code.strip())
        statuses.append(r.status)
        mark, mark_refused = _sql_mark(r.mark)
        marks.append(mark)
        refused.append(mark_refused)
    return ChunkRows(numbers, codes, statuses, marks, refused)


async def _apply_rows(
    session: AsyncSession, chunk: MarkImportChunkV1, rows: ChunkRows
) -> BatchOutcome:
    """The chunk's rows applied as :func:`~results_service.usecases.marks.apply_mark_batch`
    applies a batch (same rules, lock, version bump and ``marks.changed``), set-based.

    Raises ``NotFound``, ``Forbidden`` or ``Conflict(EXAM_PUBLISHED)`` for the chunk.
    """
    exam = await get_exam(session, chunk.exam_id, lock=not chunk.dry_run)
    if exam is None:
        raise NotFound("No such exam.")
    actor = Actor(chunk.requested_by.user_id, chunk.requested_by.role)
    authorize_mark_write(exam, actor, chunk.reason, sorted(set(rows.subject_codes)))
    subjects = exam_subjects(exam)
    ctx = WriteContext(
        changed_by=actor.user_id, source="import", reason=chunk.reason, job_id=chunk.job_id
    )
    done = await apply_chunk_rows(
        session,
        exam_id=chunk.exam_id,
        max_marks={code: s.max_mark for code, s in subjects.items()},
        rows=rows,
        ctx=ctx,
        partial=chunk.mode == ImportMode.PARTIAL,
        write=not chunk.dry_run,
    )
    problems = [
        p
        for pos, known, duplicate in done.failed
        for p in _row_problems(chunk, rows, pos, known, duplicate, subjects)
    ]
    if not done.applied:
        would = done.valid - done.unchanged
        return BatchOutcome(would, done.unchanged, problems, len(done.failed), False, None)
    version = None
    if done.written:
        version = await bump_marks_version(session, chunk.exam_id)
        await add_event(
            session,
            MarksChangedV1(
                exam_id=chunk.exam_id,
                marks_version=version,
                cause="marks",
                source="import",
                changed=done.written,
                exam_published=exam.is_published,
            ),
        )
    return BatchOutcome(
        done.written,
        done.valid - done.written,
        problems,
        len(done.failed),
        True,
        version,
    )


def _row_problems(
    chunk: MarkImportChunkV1,
    rows: ChunkRows,
    pos: int,
    student_known: bool,
    duplicate: bool,
    subjects: dict[str, Subject],
) -> list[EntryProblem]:
    row = chunk.rows[pos]
    entry = MarkInput(
        row.row, rows.student_numbers[pos], rows.subject_codes[pos], row.status, row.mark
    )
    problems = entry_problems(
        entry, student_known=student_known, subjects=subjects, duplicate=duplicate
    )
    if not problems:
        # SQL refused a row the domain's rules accept: they disagree, a bug.
        raise RuntimeError(
            f"row {row.row} of chunk {chunk.job_id}/{chunk.chunk_no} refused "
            "by SQL without a problem"
        )
    return problems


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
