"""Validating a batch of mark entries against an exam (pure: no I/O).

Shared by ``PUT /exams/{id}/marks`` and the bulk import chunks, so a mark is
valid or not the same way whichever path it takes. Every problem of every
entry is reported; the per-mark rules are the domain's
(:func:`results_service.domain.validate_mark`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from service_kit.errors import Conflict, DetailCode, ErrorCode, Forbidden

from results_service.domain import MarkStatus, ProblemCode, Subject, validate_mark
from results_service.store.exams import ExamRecord
from results_service.store.marks import MarkWrite

MAX_BATCH_ENTRIES = 5000
"""API.md: at most 5000 entries a call (``PutMarksIn`` states it); import chunks hold as many."""


@dataclass(frozen=True, slots=True)
class MarkInput:
    """One requested entry as received; ``ref`` is its index (API) or file row (import)."""

    ref: int
    student_number: str
    subject_code: str
    status: str
    mark: Decimal | None


@dataclass(frozen=True, slots=True)
class EntryProblem:
    """One problem of one entry; ``field`` is the entry's field, empty for the whole entry."""

    ref: int
    field: str
    code: DetailCode
    message: str
    value: str


@dataclass(frozen=True, slots=True)
class Actor:
    """Who writes: the user id and role of the token (API) or of the import's requester."""

    user_id: uuid.UUID
    role: str


@dataclass(frozen=True, slots=True)
class ValidatedBatch:
    valid: list[MarkWrite] = field(default_factory=list)
    problems: list[EntryProblem] = field(default_factory=list)

    @property
    def failed_refs(self) -> set[int]:
        return {p.ref for p in self.problems}


def authorize_mark_write(
    exam: ExamRecord, actor: Actor, reason: str | None, subject_codes: Sequence[str]
) -> None:
    """Raises unless ``actor`` may write marks of ``subject_codes`` in ``exam``.

    After publication only an admin may, and only with a reason (409
    ``EXAM_PUBLISHED``). An examiner may write a subject that lists them in
    ``examiner_ids`` or lists nobody; one entry outside that refuses the whole
    call with 403, since an atomic batch cannot be half authorised. Unknown
    subject codes are left to validation (``SUBJECT_NOT_FOUND``).
    """
    if actor.role not in ("admin", "examiner"):
        raise Forbidden()
    if exam.is_published and (actor.role != "admin" or not (reason or "").strip()):
        raise Conflict(
            "The exam is published: only an admin may change its marks, with a reason.",
            code=ErrorCode.EXAM_PUBLISHED,
        )
    if actor.role == "examiner":
        for code in sorted(set(subject_codes)):
            subject = exam.subject(code)
            if (
                subject is not None
                and subject.examiner_ids
                and (actor.user_id not in subject.examiner_ids)
            ):
                raise Forbidden(f"You are not an examiner of subject {code}.")


_MARK_MESSAGES = {
    ProblemCode.MARK_REQUIRED: "a present entry needs a mark",
    ProblemCode.MARK_NOT_ALLOWED: "an absent or exempt entry takes no mark",
    ProblemCode.TOO_MANY_DECIMALS: "a mark has at most two decimals",
    ProblemCode.NOT_A_NUMBER: "the mark must be a finite number",
}

# Stands in for an unknown subject so the entry's other problems still show.
_ANY_SUBJECT = Subject(code="", max_mark=Decimal("Infinity"), pass_mark=Decimal(0))


def _mark_problem(entry: MarkInput, code: ProblemCode, subject: Subject) -> EntryProblem:
    if code == ProblemCode.MARK_OUT_OF_RANGE:
        message = f"the mark must be between 0 and {subject.max_mark}"
    else:
        message = _MARK_MESSAGES.get(code, code.value.lower().replace("_", " "))
    value = "" if entry.mark is None else str(entry.mark)
    # The domain's codes are catalogue codes (a test holds them to it).
    return EntryProblem(entry.ref, "mark", DetailCode(code), message, value)


def _entry_key(entry: MarkInput) -> tuple[str, str]:
    return (entry.student_number, entry.subject_code)


def exam_subjects(exam: ExamRecord) -> dict[str, Subject]:
    """The exam's subjects as the domain's validation takes them, by code."""
    return {
        s.code: Subject(code=s.code, max_mark=s.max_mark, pass_mark=s.pass_mark, credits=s.credits)
        for s in exam.subjects
    }


_STATUSES = frozenset(s.value for s in MarkStatus)


def entry_problems(
    entry: MarkInput, *, student_known: bool, subjects: Mapping[str, Subject], duplicate: bool
) -> list[EntryProblem]:
    """Every problem of one entry, in the order they are reported; empty when valid.

    ``student_known``: its student number belongs to a student; ``duplicate``:
    its (student, subject) pair is given more than once in the batch.
    """
    problems: list[EntryProblem] = []
    if not student_known:
        problems.append(
            EntryProblem(
                entry.ref,
                "student_number",
                DetailCode.STUDENT_NOT_FOUND,
                f"no student has the number {entry.student_number!r}",
                entry.student_number,
            )
        )
    subject = subjects.get(entry.subject_code)
    if subject is None:
        problems.append(
            EntryProblem(
                entry.ref,
                "subject_code",
                DetailCode.SUBJECT_NOT_FOUND,
                f"the exam has no subject {entry.subject_code!r}",
                entry.subject_code,
            )
        )
    if entry.status not in _STATUSES:
        problems.append(
            EntryProblem(
                entry.ref,
                "status",
                DetailCode.INVALID_STATUS,
                "status must be present, absent or exempt",
                entry.status,
            )
        )
    else:
        checked = subject or _ANY_SUBJECT
        for code in validate_mark(checked, entry.status, entry.mark):
            problems.append(_mark_problem(entry, code, checked))
    if duplicate:
        problems.append(
            EntryProblem(
                entry.ref,
                "",
                DetailCode.DUPLICATE_ENTRY,
                f"student {entry.student_number!r} and subject {entry.subject_code!r} "
                "appear more than once in this batch",
                f"{entry.student_number},{entry.subject_code}",
            )
        )
    return problems


def validate_entries(
    exam: ExamRecord,
    entries: Sequence[MarkInput],
    student_ids: Mapping[str, uuid.UUID],
) -> ValidatedBatch:
    """Every problem of every entry, and the entries that have none, ready to write.

    ``student_ids`` maps the student numbers that exist to their user ids. A
    (student, subject) pair given twice is a ``DUPLICATE_ENTRY`` on every
    entry involved: which one was meant is not ours to guess.
    """
    subjects = exam_subjects(exam)
    seen = Counter(_entry_key(e) for e in entries)
    batch = ValidatedBatch()
    for entry in entries:
        student_id = student_ids.get(entry.student_number)
        problems = entry_problems(
            entry,
            student_known=student_id is not None,
            subjects=subjects,
            duplicate=seen[_entry_key(entry)] > 1,
        )
        if problems:
            batch.problems.extend(problems)
        else:
            assert student_id is not None
            batch.valid.append(MarkWrite(student_id, entry.subject_code, entry.status, entry.mark))
    return batch
