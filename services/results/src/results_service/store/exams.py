"""SQL for exams, their subjects and grading scales.

Loading an exam takes three queries whatever the page size (header, then the
subjects and bands of every exam on the page), never one per exam.

Row lock protocol (shared with generation and publication): every change of
an exam's marks or definition runs in a transaction that first locks the exam
row with :func:`get_exam` ``(lock=True)`` (``SELECT ... FOR UPDATE``) and
bumps ``marks_version`` in that same transaction. A generation that reads
``marks_version`` and the marks under ``FOR SHARE`` of the exam row (or in
one REPEATABLE READ snapshot) therefore sees a consistent pair.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.store.errors import is_unique_violation
from results_service.store.tables import exams, grade_bands, marks, subjects

EXAM_CODE_INDEX = "uq_exams_code_lower"


class ExamCodeTaken(Exception):
    """Another exam already has this code (compared case-insensitively)."""


@dataclass(frozen=True, slots=True)
class SubjectRecord:
    code: str
    name: str
    max_mark: Decimal
    pass_mark: Decimal
    credits: Decimal
    examiner_ids: tuple[uuid.UUID, ...] = ()


@dataclass(frozen=True, slots=True)
class GradeBandRecord:
    grade: str
    min_percent: Decimal
    points: Decimal


@dataclass(frozen=True, slots=True)
class ExamRecord:
    """An exam as stored, with its subjects (in exam order) and grading scale."""

    id: uuid.UUID
    code: str
    name: str
    term: str | None
    status: str
    publish_at: datetime | None
    published_at: datetime | None
    pass_percent: Decimal
    rank_method: str
    created_by: uuid.UUID
    created_at: datetime
    updated_at: datetime
    marks_version: int
    results_version: int | None
    results_generated_at: datetime | None
    subjects: tuple[SubjectRecord, ...]
    grading_scale: tuple[GradeBandRecord, ...]

    @property
    def results_stale(self) -> bool:
        """True while results miss a change; never generated counts as stale (API.md)."""
        return self.results_version is None or self.results_version < self.marks_version

    @property
    def is_published(self) -> bool:
        return self.status == "published"

    def subject(self, code: str) -> SubjectRecord | None:
        for subject in self.subjects:
            if subject.code == code:
                return subject
        return None


@dataclass(frozen=True, slots=True)
class NewExam:
    id: uuid.UUID
    code: str
    name: str
    term: str | None
    pass_percent: Decimal
    rank_method: str
    created_by: uuid.UUID
    subjects: tuple[SubjectRecord, ...]
    grading_scale: tuple[GradeBandRecord, ...]


_HEADER = (
    exams.c.id,
    exams.c.code,
    exams.c.name,
    exams.c.term,
    exams.c.status,
    exams.c.publish_at,
    exams.c.published_at,
    exams.c.pass_percent,
    exams.c.rank_method,
    exams.c.created_by,
    exams.c.created_at,
    exams.c.updated_at,
    exams.c.marks_version,
    exams.c.results_version,
    exams.c.results_generated_at,
)


def _subject_rows(exam_id: uuid.UUID, items: Sequence[SubjectRecord]) -> list[dict[str, Any]]:
    return [
        {
            "exam_id": exam_id,
            "code": s.code,
            "position": position,
            "name": s.name,
            "max_mark": s.max_mark,
            "pass_mark": s.pass_mark,
            "credits": s.credits,
            "examiner_ids": list(s.examiner_ids),
        }
        for position, s in enumerate(items)
    ]


def _band_rows(exam_id: uuid.UUID, items: Sequence[GradeBandRecord]) -> list[dict[str, Any]]:
    return [
        {"exam_id": exam_id, "grade": b.grade, "min_percent": b.min_percent, "points": b.points}
        for b in items
    ]


async def insert_exam(session: AsyncSession, new: NewExam) -> None:
    """Inserts the exam with its subjects and bands; :class:`ExamCodeTaken` on a code clash.

    ``ON CONFLICT DO NOTHING`` on the code index makes two concurrent creations
    of one code race-safe: exactly one inserts, the other sees no row back.
    """
    inserted = await session.scalar(
        pg_insert(exams)
        .values(
            id=new.id,
            code=new.code,
            name=new.name,
            term=new.term,
            pass_percent=new.pass_percent,
            rank_method=new.rank_method,
            created_by=new.created_by,
        )
        .on_conflict_do_nothing(index_elements=[func.lower(exams.c.code)])
        .returning(exams.c.id)
    )
    if inserted is None:
        raise ExamCodeTaken(new.code)
    await session.execute(insert(subjects), _subject_rows(new.id, new.subjects))
    await session.execute(insert(grade_bands), _band_rows(new.id, new.grading_scale))


async def _load(
    session: AsyncSession, headers: Sequence[Row[*tuple[Any, ...]]]
) -> list[ExamRecord]:
    if not headers:
        return []
    ids = [h.id for h in headers]
    subject_rows = await session.execute(
        select(subjects)
        .where(subjects.c.exam_id.in_(ids))
        .order_by(subjects.c.exam_id, subjects.c.position)
    )
    band_rows = await session.execute(
        select(grade_bands)
        .where(grade_bands.c.exam_id.in_(ids))
        .order_by(grade_bands.c.exam_id, grade_bands.c.min_percent.desc())
    )
    by_exam_subjects: dict[uuid.UUID, list[SubjectRecord]] = {i: [] for i in ids}
    for s in subject_rows:
        by_exam_subjects[s.exam_id].append(
            SubjectRecord(
                code=s.code,
                name=s.name,
                max_mark=s.max_mark,
                pass_mark=s.pass_mark,
                credits=s.credits,
                examiner_ids=tuple(s.examiner_ids or ()),
            )
        )
    by_exam_bands: dict[uuid.UUID, list[GradeBandRecord]] = {i: [] for i in ids}
    for b in band_rows:
        by_exam_bands[b.exam_id].append(GradeBandRecord(b.grade, b.min_percent, b.points))
    return [
        ExamRecord(
            **h._asdict(),
            subjects=tuple(by_exam_subjects[h.id]),
            grading_scale=tuple(by_exam_bands[h.id]),
        )
        for h in headers
    ]


async def get_exam(
    session: AsyncSession, exam_id: uuid.UUID, *, lock: bool = False
) -> ExamRecord | None:
    """The exam, or None; ``lock=True`` holds its row (``FOR UPDATE``) until commit."""
    query = select(*_HEADER).where(exams.c.id == exam_id)
    if lock:
        query = query.with_for_update(of=exams)
    header = (await session.execute(query)).one_or_none()
    if header is None:
        return None
    loaded = await _load(session, [header])
    return loaded[0]


async def list_exams(
    session: AsyncSession,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
    published_only: bool = False,
) -> list[ExamRecord]:
    """A page of exams, newest first; ``after`` is the (created_at, id) of the last one seen."""
    query = select(*_HEADER)
    if after is not None:
        created_at, exam_id = after
        query = query.where(tuple_(exams.c.created_at, exams.c.id) < tuple_(created_at, exam_id))
    if published_only:
        query = query.where(exams.c.status == "published")
    query = query.order_by(exams.c.created_at.desc(), exams.c.id.desc()).limit(limit)
    headers = (await session.execute(query)).all()
    return await _load(session, headers)


async def update_exam_header(session: AsyncSession, exam_id: uuid.UUID, **values: Any) -> None:
    """Updates header columns; :class:`ExamCodeTaken` when a new code clashes."""
    try:
        async with session.begin_nested():
            await session.execute(
                update(exams).where(exams.c.id == exam_id).values(**values, updated_at=func.now())
            )
    except IntegrityError as exc:
        if is_unique_violation(exc, EXAM_CODE_INDEX):
            raise ExamCodeTaken(str(values.get("code"))) from exc
        raise


async def replace_subjects(
    session: AsyncSession, exam_id: uuid.UUID, items: Sequence[SubjectRecord]
) -> None:
    """Makes ``items`` the exam's subjects: upserts them and deletes the others.

    Callers make sure no removed subject has marks (the foreign key from marks
    would refuse the delete anyway).
    """
    keep = [s.code for s in items]
    await session.execute(
        delete(subjects).where(subjects.c.exam_id == exam_id, subjects.c.code.not_in(keep))
    )
    statement = pg_insert(subjects).values(_subject_rows(exam_id, items))
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[subjects.c.exam_id, subjects.c.code],
            set_={
                name: statement.excluded[name]
                for name in ("position", "name", "max_mark", "pass_mark", "credits", "examiner_ids")
            },
        )
    )


async def replace_grading_scale(
    session: AsyncSession, exam_id: uuid.UUID, items: Sequence[GradeBandRecord]
) -> None:
    await session.execute(delete(grade_bands).where(grade_bands.c.exam_id == exam_id))
    await session.execute(insert(grade_bands), _band_rows(exam_id, items))


async def highest_marks(session: AsyncSession, exam_id: uuid.UUID) -> dict[str, Decimal | None]:
    """Per subject with entries: its highest mark (None when every entry has no mark)."""
    rows = await session.execute(
        select(marks.c.subject_code, func.max(marks.c.mark))
        .where(marks.c.exam_id == exam_id)
        .group_by(marks.c.subject_code)
    )
    return {code: highest for code, highest in rows}


async def bump_marks_version(session: AsyncSession, exam_id: uuid.UUID) -> int:
    """Makes the exam's results stale; returns the new ``marks_version``.

    Call with the exam row locked, in the transaction of the change.
    """
    version = await session.scalar(
        update(exams)
        .where(exams.c.id == exam_id)
        .values(marks_version=exams.c.marks_version + 1)
        .returning(exams.c.marks_version)
    )
    assert version is not None
    return int(version)


async def exam_exists(session: AsyncSession, exam_id: uuid.UUID) -> bool:
    found = await session.scalar(select(exams.c.id).where(exams.c.id == exam_id))
    return found is not None
