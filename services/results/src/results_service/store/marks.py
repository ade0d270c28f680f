"""SQL for marks and their audit trail.

A batch is written by one statement (:func:`upsert_marks`): the entries go in
as arrays through ``unnest``, unchanged entries are left alone (``WHERE ...
IS DISTINCT FROM``, so their ``updated_at`` and audit stay as they were), and
every changed entry gets its audit row from the same statement, old values
included: all parts of a statement see the snapshot from before it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, text, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.settings import SCHEMA
from results_service.store.tables import mark_audit, marks, students


@dataclass(frozen=True, slots=True)
class MarkWrite:
    """One valid entry, ready to store."""

    student_id: uuid.UUID
    subject_code: str
    status: str
    mark: Decimal | None


@dataclass(frozen=True, slots=True)
class WriteContext:
    """Who changes the marks, why, and through what (recorded in the audit)."""

    changed_by: uuid.UUID
    source: str
    reason: str | None = None
    job_id: uuid.UUID | None = None


_INCOMING = """
    incoming AS (
        SELECT * FROM unnest(
            CAST(:student_ids AS uuid[]),
            CAST(:subject_codes AS text[]),
            CAST(:statuses AS text[]),
            CAST(:marks AS numeric[])
        ) AS t(student_id, subject_code, status, mark)
    )"""

# Only module constants are spliced in (the schema name); values are bound parameters.
_UPSERT = f"""
WITH {_INCOMING},
previous AS (
    SELECT m.student_id, m.subject_code, m.status, m.mark
    FROM {SCHEMA}.marks AS m
    JOIN incoming AS i USING (student_id, subject_code)
    WHERE m.exam_id = :exam_id
),
written AS (
    INSERT INTO {SCHEMA}.marks AS m
        (exam_id, student_id, subject_code, status, mark, updated_at, updated_by)
    SELECT :exam_id, student_id, subject_code, status, mark, now(), :changed_by
    FROM incoming
    ON CONFLICT (exam_id, student_id, subject_code) DO UPDATE
        SET status = excluded.status,
            mark = excluded.mark,
            updated_at = excluded.updated_at,
            updated_by = excluded.updated_by
        WHERE (m.status, m.mark) IS DISTINCT FROM (excluded.status, excluded.mark)
    RETURNING m.student_id, m.subject_code, m.status, m.mark
),
audited AS (
    INSERT INTO {SCHEMA}.mark_audit
        (exam_id, student_id, subject_code, old_status, old_mark, new_status, new_mark,
         changed_by, reason, source, job_id)
    SELECT :exam_id, w.student_id, w.subject_code, p.status, p.mark, w.status, w.mark,
           :changed_by, :reason, :source, :job_id
    FROM written AS w
    LEFT JOIN previous AS p USING (student_id, subject_code)
    RETURNING 1
)
SELECT count(*) FROM audited
"""  # noqa: S608

_COUNT_UNCHANGED = f"""
WITH {_INCOMING}
SELECT count(*)
FROM incoming AS i
JOIN {SCHEMA}.marks AS m
  ON m.exam_id = :exam_id AND m.student_id = i.student_id AND m.subject_code = i.subject_code
WHERE (m.status, m.mark) IS NOT DISTINCT FROM (i.status, i.mark)
"""  # noqa: S608


def _arrays(entries: Sequence[MarkWrite]) -> dict[str, object]:
    return {
        "student_ids": [e.student_id for e in entries],
        "subject_codes": [e.subject_code for e in entries],
        "statuses": [e.status for e in entries],
        "marks": [e.mark for e in entries],
    }


async def upsert_marks(
    session: AsyncSession, exam_id: uuid.UUID, entries: Sequence[MarkWrite], ctx: WriteContext
) -> int:
    """Writes the entries that differ from the stored ones, with audit; returns how many.

    Entries must be unique per (student, subject): Postgres refuses to update
    one row twice in a statement. Call with the exam row locked.
    """
    if not entries:
        return 0
    written = await session.scalar(
        text(_UPSERT),
        {
            **_arrays(entries),
            "exam_id": exam_id,
            "changed_by": ctx.changed_by,
            "reason": ctx.reason,
            "source": ctx.source,
            "job_id": ctx.job_id,
        },
    )
    return int(written or 0)


async def count_unchanged(
    session: AsyncSession, exam_id: uuid.UUID, entries: Sequence[MarkWrite]
) -> int:
    """How many entries equal the stored ones (what a dry run reports as unchanged)."""
    if not entries:
        return 0
    found = await session.scalar(text(_COUNT_UNCHANGED), {**_arrays(entries), "exam_id": exam_id})
    return int(found or 0)


@dataclass(frozen=True, slots=True)
class StoredMark:
    student_id: uuid.UUID
    student_number: str
    subject_code: str
    status: str
    mark: Decimal | None
    updated_at: datetime
    updated_by: uuid.UUID


async def list_marks(
    session: AsyncSession,
    exam_id: uuid.UUID,
    *,
    subject_code: str | None,
    student_id: uuid.UUID | None,
    after: tuple[uuid.UUID, str] | None,
    limit: int,
) -> list[StoredMark]:
    """A page of an exam's marks in (student id, subject code) order.

    That order is the primary key's (and the subject index's), so every page
    is an index range scan, however many marks the exam has.
    """
    query = (
        select(
            marks.c.student_id,
            students.c.student_number,
            marks.c.subject_code,
            marks.c.status,
            marks.c.mark,
            marks.c.updated_at,
            marks.c.updated_by,
        )
        .join(students, students.c.user_id == marks.c.student_id)
        .where(marks.c.exam_id == exam_id)
    )
    if subject_code is not None:
        query = query.where(marks.c.subject_code == subject_code)
    if student_id is not None:
        query = query.where(marks.c.student_id == student_id)
    if after is not None:
        query = query.where(tuple_(marks.c.student_id, marks.c.subject_code) > tuple_(*after))
    query = query.order_by(marks.c.student_id, marks.c.subject_code).limit(limit)
    rows = await session.execute(query)
    return [StoredMark(**row._asdict()) for row in rows]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    student_number: str
    subject_code: str
    old_status: str | None
    old_mark: Decimal | None
    new_status: str
    new_mark: Decimal | None
    changed_by: uuid.UUID
    changed_at: datetime
    reason: str | None
    source: str
    job_id: uuid.UUID | None


async def list_audit(
    session: AsyncSession,
    exam_id: uuid.UUID,
    *,
    student_id: uuid.UUID | None,
    before_id: int | None,
    limit: int,
) -> list[AuditEntry]:
    """A page of an exam's mark changes, newest first."""
    a = mark_audit
    query = (
        select(
            a.c.id,
            students.c.student_number,
            a.c.subject_code,
            a.c.old_status,
            a.c.old_mark,
            a.c.new_status,
            a.c.new_mark,
            a.c.changed_by,
            a.c.changed_at,
            a.c.reason,
            a.c.source,
            a.c.job_id,
        )
        .join(students, students.c.user_id == a.c.student_id)
        .where(a.c.exam_id == exam_id)
    )
    if student_id is not None:
        query = query.where(a.c.student_id == student_id)
    if before_id is not None:
        query = query.where(a.c.id < before_id)
    rows = await session.execute(query.order_by(a.c.id.desc()).limit(limit))
    return [AuditEntry(**row._asdict()) for row in rows]
