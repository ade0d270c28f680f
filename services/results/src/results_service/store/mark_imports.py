"""Import chunks: applying one chunk's rows in one statement, and the chunks already
applied, keyed by (job, chunk): a chunk is applied once."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.settings import SCHEMA
from results_service.store.marks import WriteContext
from results_service.store.tables import processed_chunks


async def processed_chunk_result(
    session: AsyncSession, job_id: uuid.UUID, chunk_no: int
) -> dict[str, Any] | None:
    """The stored answer of an already applied chunk, or None."""
    result: dict[str, Any] | None = await session.scalar(
        select(processed_chunks.c.result).where(
            processed_chunks.c.job_id == job_id, processed_chunks.c.chunk_no == chunk_no
        )
    )
    return result


async def save_processed_chunk(
    session: AsyncSession,
    job_id: uuid.UUID,
    chunk_no: int,
    exam_id: uuid.UUID,
    result: dict[str, Any],
) -> bool:
    """Records the chunk as applied; False when a concurrent twin recorded it first."""
    saved = await session.scalar(
        insert(processed_chunks)
        .values(job_id=job_id, chunk_no=chunk_no, exam_id=exam_id, result=result)
        .on_conflict_do_nothing(index_elements=["job_id", "chunk_no"])
        .returning(processed_chunks.c.job_id)
    )
    return saved is not None


@dataclass(frozen=True, slots=True)
class ChunkRows:
    """An import chunk's rows as columns, in chunk order (what the statement binds).

    ``marks`` holds each row's mark as SQL should compare it; ``mark_refused``
    is true for a row whose mark Python already found invalid (a value SQL
    could not hold, such as ``1E+1000000``): such a row is never valid.
    """

    student_numbers: list[str]
    subject_codes: list[str]
    statuses: list[str]
    marks: list[Decimal | None]
    mark_refused: list[bool]


@dataclass(frozen=True, slots=True)
class ChunkApplied:
    """What the chunk statement found and did.

    ``failed`` lists the invalid rows (0-based positions in the chunk) with,
    for each, whether its student exists and whether its (student, subject)
    pair appears more than once in the chunk, so their problems can be told.
    """

    valid: int
    unchanged: int
    written: int
    applied: bool
    failed: list[tuple[int, bool, bool]]


# One statement validates the chunk, writes its valid changed rows (when told
# to) and their audit, and counts. The rows come in as arrays (unnest WITH
# ORDINALITY: ``pos`` is the row's 1-based place in the chunk); students are
# matched by number in the read model, each distinct number once, and with it
# come that student's stored marks in this exam (``known``: two index probes
# per student, not two per row, ADR 0023); the subjects (code, max_mark) are
# bound from the exam read under its lock, so SQL and the problems told in
# Python see the same definition. Every part of the statement sees the
# snapshot from before it: the stored marks are read before writing, so the
# rows to write (valid and different) are known before writing, and their
# audit rows (old values included) come from the same rows, without a join
# back. Under the exam's row lock nobody else writes these marks, so what is
# written is exactly ``todo`` (the caller checks it: ``written`` must equal
# ``audited``).
# Only module constants are spliced in (the schema name); values are bound.
# The statement runs as a prepared statement whose generic plan guesses 10
# rows for each unnest: its shape must not depend on estimates (probes under
# LATERAL ... LIMIT or an aggregate, a MATERIALIZED CTE for what is joined).
_APPLY_CHUNK = f"""
WITH incoming AS (
    SELECT * FROM unnest(
        CAST(:student_numbers AS text[]),
        CAST(:subject_codes AS text[]),
        CAST(:statuses AS text[]),
        CAST(:marks AS numeric[]),
        CAST(:mark_refused AS boolean[])
    ) WITH ORDINALITY AS t(student_number, subject_code, status, mark, mark_refused, pos)
),
subject AS (
    SELECT * FROM unnest(CAST(:subject_list AS text[]), CAST(:max_marks AS numeric[]))
        AS s(code, max_mark)
),
-- Each student of the chunk once (a chunk holds all the subjects of most of its
-- students): LATERAL ... LIMIT 1, one index probe per number whatever the
-- table's size (a hash join would read every student); then the student's
-- stored marks in this exam by one probe of the primary key's (exam_id,
-- student_id) prefix, as arrays (an aggregate: always one row, NULLs if none).
-- MATERIALIZED: the probes run once, whatever join the planner picks below (a
-- generic plan guesses 10 rows for an unnest).
known AS MATERIALIZED (
    SELECT n.student_number, st.user_id, sm.codes, sm.statuses, sm.marks
    FROM (SELECT DISTINCT student_number FROM incoming WHERE student_number <> '') AS n
    CROSS JOIN LATERAL (
        SELECT s.user_id FROM {SCHEMA}.students AS s
        WHERE s.student_number = n.student_number
        LIMIT 1
    ) AS st
    CROSS JOIN LATERAL (
        SELECT array_agg(m.subject_code) AS codes, array_agg(m.status) AS statuses,
               array_agg(m.mark) AS marks
        FROM {SCHEMA}.marks AS m
        WHERE m.exam_id = :exam_id AND m.student_id = st.user_id
    ) AS sm
),
resolved AS (
    SELECT i.pos, i.student_number, i.subject_code, i.status, i.mark, i.mark_refused,
           kn.user_id AS student_id, sub.max_mark,
           count(*) OVER (PARTITION BY i.student_number, i.subject_code) AS copies,
           kn.statuses, kn.marks AS stored_marks,
           array_position(kn.codes, i.subject_code) AS at
    FROM incoming AS i
    LEFT JOIN known AS kn ON kn.student_number = i.student_number
    LEFT JOIN subject AS sub ON sub.code = i.subject_code
),
checked AS (
    SELECT r.pos, r.student_number, r.subject_code, r.status, r.mark, r.student_id, r.copies,
        r.statuses[r.at] AS old_status, r.stored_marks[r.at] AS old_mark,
        r.at IS NOT NULL AS stored,
        (r.student_id IS NOT NULL AND r.max_mark IS NOT NULL AND r.copies = 1
         AND NOT r.mark_refused
         AND CASE r.status
             WHEN 'present' THEN r.mark IS NOT NULL AND r.mark >= 0 AND r.mark <= r.max_mark
                                 AND min_scale(r.mark) <= 2
             WHEN 'absent' THEN r.mark IS NULL
             WHEN 'exempt' THEN r.mark IS NULL
             ELSE false
             END) AS valid
    FROM resolved AS r
),
go AS (
    SELECT CAST(:write AS boolean)
           AND (CAST(:partial AS boolean) OR coalesce(bool_and(valid), true)) AS ok
    FROM checked
),
todo AS (
    SELECT c.* FROM checked AS c, go
    WHERE go.ok AND c.valid
      AND NOT (c.stored AND (c.old_status, c.old_mark) IS NOT DISTINCT FROM (c.status, c.mark))
),
-- New marks: a plain INSERT. Under the exam's row lock nobody else writes this
-- exam's marks, so a key absent from the snapshot is still absent (were it
-- not, the unique key would fail the statement: nothing is half-applied).
-- ON CONFLICT would probe the primary key once more per row before inserting.
-- In key order: consecutive rows go to the same or the next index pages.
inserted AS (
    INSERT INTO {SCHEMA}.marks
        (exam_id, student_id, subject_code, status, mark, updated_at, updated_by)
    SELECT :exam_id, student_id, subject_code, status, mark, now(), :changed_by
    FROM todo WHERE NOT stored
    ORDER BY student_id, subject_code
    RETURNING 1
),
updated AS (
    INSERT INTO {SCHEMA}.marks AS m
        (exam_id, student_id, subject_code, status, mark, updated_at, updated_by)
    SELECT :exam_id, student_id, subject_code, status, mark, now(), :changed_by
    FROM todo WHERE stored
    ON CONFLICT (exam_id, student_id, subject_code) DO UPDATE
        SET status = excluded.status,
            mark = excluded.mark,
            updated_at = excluded.updated_at,
            updated_by = excluded.updated_by
        WHERE (m.status, m.mark) IS DISTINCT FROM (excluded.status, excluded.mark)
    RETURNING 1
),
audited AS (
    INSERT INTO {SCHEMA}.mark_audit
        (exam_id, student_id, subject_code, old_status, old_mark, new_status, new_mark,
         changed_by, reason, source, job_id)
    SELECT :exam_id, student_id, subject_code, old_status, old_mark, status, mark,
           :changed_by, :reason, :source, :job_id
    FROM todo
    RETURNING 1
)
SELECT
    (SELECT ok FROM go) AS applied,
    (SELECT count(*) FROM inserted) + (SELECT count(*) FROM updated) AS written,
    (SELECT count(*) FROM audited) AS audited,
    count(*) FILTER (WHERE valid) AS valid,
    count(*) FILTER (
        WHERE valid AND stored
          AND (old_status, old_mark) IS NOT DISTINCT FROM (status, mark)
    ) AS unchanged,
    coalesce(array_agg(pos ORDER BY pos) FILTER (WHERE NOT valid), '{{}}') AS failed,
    coalesce(array_agg(student_id IS NOT NULL ORDER BY pos) FILTER (WHERE NOT valid), '{{}}')
        AS failed_known,
    coalesce(array_agg(copies > 1 ORDER BY pos) FILTER (WHERE NOT valid), '{{}}') AS failed_dup
FROM checked
"""  # noqa: S608


class ChunkWriteMismatch(RuntimeError):
    """The statement wrote other rows than it audited: marks changed under the exam lock."""


async def apply_chunk_rows(
    session: AsyncSession,
    *,
    exam_id: uuid.UUID,
    max_marks: Mapping[str, Decimal],
    rows: ChunkRows,
    ctx: WriteContext,
    partial: bool,
    write: bool,
) -> ChunkApplied:
    """Validates the rows against ``max_marks`` (subject code -> max mark) and the
    students read model, and, when ``write`` (and, unless ``partial``, every row
    is valid), writes the valid rows that change a mark, with their audit.

    Call with the exam row locked when ``write``.
    """
    row = (
        await session.execute(
            text(_APPLY_CHUNK),
            {
                "student_numbers": rows.student_numbers,
                "subject_codes": rows.subject_codes,
                "statuses": rows.statuses,
                "marks": rows.marks,
                "mark_refused": rows.mark_refused,
                "subject_list": list(max_marks),
                "max_marks": list(max_marks.values()),
                "exam_id": exam_id,
                "write": write,
                "partial": partial,
                "changed_by": ctx.changed_by,
                "reason": ctx.reason,
                "source": ctx.source,
                "job_id": ctx.job_id,
            },
        )
    ).one()
    if row.written != row.audited:
        raise ChunkWriteMismatch(f"wrote {row.written} marks but audited {row.audited}")
    return ChunkApplied(
        valid=int(row.valid),
        unchanged=int(row.unchanged),
        written=int(row.written),
        applied=bool(row.applied),
        failed=[
            (pos - 1, known, dup)
            for pos, known, dup in zip(row.failed, row.failed_known, row.failed_dup, strict=True)
        ],
    )
