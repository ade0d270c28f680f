"""Writing marks: one batch, validated as a whole, applied in one transaction.

:func:`apply_mark_batch` serves the API (atomic; it also takes partial and
all-or-nothing batches and dry runs). Import chunks follow the same rules
set-based in SQL (:mod:`results_service.usecases.mark_imports`, ADR 0017),
telling problems with the same :func:`~results_service.usecases.mark_entries.entry_problems`.
Under the exam's row lock it
re-checks the rules, validates every entry, upserts the changed ones with
their audit, and, when anything changed, bumps the exam's ``marks_version``
and writes ``marks.changed`` to the outbox, all in the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from service_kit.db import Database
from service_kit.errors import ErrorDetail, NotFound, ValidationFailed
from service_kit.messaging.outbox import add_event
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.clients.auth import StudentLookup
from results_service.contracts import MarksChangedV1
from results_service.read_your_writes import RecentWriters
from results_service.store.exams import bump_marks_version, get_exam
from results_service.store.marks import WriteContext, count_unchanged, upsert_marks
from results_service.usecases.mark_entries import (
    Actor,
    EntryProblem,
    MarkInput,
    authorize_mark_write,
    validate_entries,
)
from results_service.usecases.metrics import MARK_ENTRIES
from results_service.usecases.students import resolve_student_numbers


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What a batch did (``applied``) or would do: counts of valid entries, and problems."""

    written: int
    unchanged: int
    problems: list[EntryProblem]
    failed: int
    applied: bool
    marks_version: int | None


async def apply_mark_batch(
    session: AsyncSession,
    *,
    exam_id: uuid.UUID,
    entries: Sequence[MarkInput],
    student_ids: dict[str, uuid.UUID],
    actor: Actor,
    ctx: WriteContext,
    partial: bool,
    dry_run: bool,
) -> BatchOutcome:
    """Validates ``entries`` and writes the valid ones unless told not to.

    ``partial``: write the valid entries even if others are bad; otherwise
    one bad entry writes nothing. ``dry_run``: write nothing. Raises
    ``NotFound``, ``Forbidden`` or ``Conflict(EXAM_PUBLISHED)`` for the batch
    as a whole. ``written`` counts entries that changed (or would change).
    """
    exam = await get_exam(session, exam_id, lock=not dry_run)
    if exam is None:
        raise NotFound("No such exam.")
    authorize_mark_write(exam, actor, ctx.reason, [e.subject_code for e in entries])
    batch = validate_entries(exam, entries, student_ids)
    failed = len(batch.failed_refs)
    if dry_run or (batch.problems and not partial):
        unchanged = await count_unchanged(session, exam_id, batch.valid)
        return BatchOutcome(
            len(batch.valid) - unchanged, unchanged, batch.problems, failed, False, None
        )
    written = await upsert_marks(session, exam_id, batch.valid, ctx)
    version = None
    if written:
        version = await bump_marks_version(session, exam_id)
        await add_event(
            session,
            MarksChangedV1(
                exam_id=exam_id,
                marks_version=version,
                cause="marks",
                source="import" if ctx.source == "import" else "api",
                changed=written,
                exam_published=exam.is_published,
            ),
        )
    return BatchOutcome(written, len(batch.valid) - written, batch.problems, failed, True, version)


def _detail(problem: EntryProblem) -> ErrorDetail:
    field = f"marks[{problem.ref}]" + (f".{problem.field}" if problem.field else "")
    return ErrorDetail(field, problem.code, problem.message)


async def put_marks(
    db: Database,
    lookup: StudentLookup,
    recent_writers: RecentWriters,
    *,
    exam_id: uuid.UUID,
    entries: Sequence[MarkInput],
    actor: Actor,
    reason: str | None,
) -> BatchOutcome:
    """``PUT /exams/{id}/marks``: all entries or none (422 listing every bad entry).

    A batch over the 5000-entry limit never gets here: its request model refuses it.
    """
    # Refuse what the caller may not do before asking auth about students.
    async with db.read_session(fresh=True) as session:
        exam = await get_exam(session, exam_id)
    if exam is None:
        raise NotFound("No such exam.")
    authorize_mark_write(exam, actor, reason, [e.subject_code for e in entries])
    student_ids: dict[str, uuid.UUID] = {}
    if entries:
        # Committed on its own: auth's answer is worth keeping even if the
        # batch turns out invalid, and no exam lock is held while auth answers.
        async with db.transaction() as session:
            student_ids = await resolve_student_numbers(
                session, lookup, {e.student_number for e in entries}
            )
    async with db.transaction() as session:
        outcome = await apply_mark_batch(
            session,
            exam_id=exam_id,
            entries=entries,
            student_ids=student_ids,
            actor=actor,
            ctx=WriteContext(changed_by=actor.user_id, source="api", reason=reason),
            partial=False,
            dry_run=False,
        )
    if outcome.problems:
        MARK_ENTRIES.labels("api", "failed").inc(outcome.failed)
        raise ValidationFailed(details=[_detail(p) for p in outcome.problems])
    MARK_ENTRIES.labels("api", "written").inc(outcome.written)
    MARK_ENTRIES.labels("api", "unchanged").inc(outcome.unchanged)
    if outcome.written:
        await recent_writers.mark(actor.user_id)
    return outcome
