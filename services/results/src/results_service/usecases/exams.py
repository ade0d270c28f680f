"""Creating and changing exams.

A change of what results depend on (subjects, grading scale, pass_percent,
rank_method) bumps ``marks_version`` under the exam's row lock, so results
become stale exactly like after a mark change, and ``marks.changed`` (cause
``definition``) asks for a regeneration.

A scheduled exam may still be patched (it is not published yet): the
schedule stands, and a definition change makes its results stale; the
scheduled publication then has to regenerate (or hold) before it publishes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from service_kit.db import Database
from service_kit.errors import Conflict, ErrorCode, NotFound, ValidationFailed
from service_kit.messaging.outbox import add_event

from results_service.contracts import MarksChangedV1
from results_service.read_your_writes import RecentWriters
from results_service.store.exams import (
    ExamCodeTaken,
    ExamRecord,
    GradeBandRecord,
    NewExam,
    SubjectRecord,
    bump_marks_version,
    get_exam,
    highest_marks,
    insert_exam,
    replace_grading_scale,
    replace_subjects,
    update_exam_header,
)
from results_service.usecases.exam_definition import (
    ExamDefinition,
    definition_problems,
    problems_with_existing_marks,
)


@dataclass(frozen=True, slots=True)
class ExamDraft:
    """A new exam as asked for."""

    code: str
    name: str
    term: str | None
    definition: ExamDefinition


@dataclass(frozen=True, slots=True)
class ExamChanges:
    """A PATCH: ``None`` leaves a part as it is."""

    code: str | None = None
    name: str | None = None
    term: str | None = None
    term_set: bool = False
    subjects: tuple[SubjectRecord, ...] | None = None
    grading_scale: tuple[GradeBandRecord, ...] | None = None
    pass_percent: Decimal | None = None
    rank_method: str | None = None


def _code_taken(code: str) -> Conflict:
    return Conflict(
        f"An exam with the code {code!r} already exists.", code=ErrorCode.EXAM_CODE_TAKEN
    )


def definition_of(exam: ExamRecord) -> ExamDefinition:
    return ExamDefinition(exam.subjects, exam.grading_scale, exam.pass_percent, exam.rank_method)


async def create_exam(
    db: Database, writers: RecentWriters, draft: ExamDraft, created_by: uuid.UUID
) -> ExamRecord:
    problems = definition_problems(draft.definition)
    if problems:
        raise ValidationFailed(details=problems)
    new = NewExam(
        id=uuid.uuid4(),
        code=draft.code,
        name=draft.name,
        term=draft.term,
        pass_percent=draft.definition.pass_percent,
        rank_method=draft.definition.rank_method,
        created_by=created_by,
        subjects=draft.definition.subjects,
        grading_scale=draft.definition.grading_scale,
    )
    try:
        async with db.transaction() as session:
            await insert_exam(session, new)
            exam = await get_exam(session, new.id)
    except ExamCodeTaken as exc:
        raise _code_taken(draft.code) from exc
    assert exam is not None
    await writers.mark(created_by)
    return exam


def _changed_definition(exam: ExamRecord, changes: ExamChanges) -> ExamDefinition:
    current = definition_of(exam)
    return replace(
        current,
        subjects=changes.subjects if changes.subjects is not None else current.subjects,
        grading_scale=(
            changes.grading_scale if changes.grading_scale is not None else current.grading_scale
        ),
        pass_percent=(
            changes.pass_percent if changes.pass_percent is not None else current.pass_percent
        ),
        rank_method=changes.rank_method if changes.rank_method is not None else current.rank_method,
    )


async def patch_exam(
    db: Database, writers: RecentWriters, exam_id: uuid.UUID, changes: ExamChanges, by: uuid.UUID
) -> ExamRecord:
    """Applies ``changes`` before publication; 409 ``EXAM_PUBLISHED`` after it."""
    try:
        async with db.transaction() as session:
            exam = await get_exam(session, exam_id, lock=True)
            if exam is None:
                raise NotFound("No such exam.")
            if exam.is_published:
                raise Conflict(
                    "The exam is published; its definition can no longer change.",
                    code=ErrorCode.EXAM_PUBLISHED,
                )
            new_definition = _changed_definition(exam, changes)
            problems = definition_problems(new_definition)
            if changes.subjects is not None:
                problems += problems_with_existing_marks(
                    changes.subjects, await highest_marks(session, exam_id)
                )
            if problems:
                raise ValidationFailed(details=problems)

            header: dict[str, Any] = {}
            if changes.code is not None:
                header["code"] = changes.code
            if changes.name is not None:
                header["name"] = changes.name
            if changes.term_set:
                header["term"] = changes.term
            if changes.pass_percent is not None:
                header["pass_percent"] = changes.pass_percent
            if changes.rank_method is not None:
                header["rank_method"] = changes.rank_method
            await update_exam_header(session, exam_id, **header)
            if changes.subjects is not None:
                await replace_subjects(session, exam_id, changes.subjects)
            if changes.grading_scale is not None:
                await replace_grading_scale(session, exam_id, changes.grading_scale)
            if new_definition.affects_results_differently_from(definition_of(exam)):
                version = await bump_marks_version(session, exam_id)
                await add_event(
                    session,
                    MarksChangedV1(
                        exam_id=exam_id,
                        marks_version=version,
                        cause="definition",
                        exam_published=False,
                    ),
                )
            updated = await get_exam(session, exam_id)
    except ExamCodeTaken as exc:
        raise _code_taken(changes.code or "") from exc
    assert updated is not None
    await writers.mark(by)
    return updated
