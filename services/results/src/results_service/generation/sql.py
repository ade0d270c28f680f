"""Set-based result generation in PostgreSQL: the RESULTS.md arithmetic as SQL.

One generation of an exam, on one connection, in three steps:

1. :func:`issue_generation` — ``UPDATE exams SET last_generation = last_generation + 1``
   in a transaction of its own: the returned number is the fencing token. It
   is committed at once, so every older holder's write (below) is refused
   from this moment on.
2. :func:`compute_results` — one REPEATABLE READ transaction: reads the
   exam's ``marks_version`` and computes every candidate's result into the
   session's temporary table ``gen_results`` from the *same* snapshot, so the
   version recorded is exactly the marks the results were computed from. No
   lock is taken on anything a writer needs.
3. :func:`write_results` — one READ COMMITTED transaction: upserts the rows
   whose values differ (``ON CONFLICT ... DO UPDATE ... WHERE ... IS DISTINCT
   FROM``, so unchanged rows keep their old ``generation``), deletes rows of
   students who are no longer candidates, then the fence: ``UPDATE exams SET
   results_version = <snapshot> WHERE id = :exam AND last_generation = :token``.
   That UPDATE locks the exam row until commit; if a newer token was issued
   it matches no row and the whole transaction rolls back: a holder that
   paused past its lease writes nothing.

Exactness: marks are NUMERIC(7,2) and every division is rounded once with
``round(x, 2)``, which is half away from zero (ROUND_HALF_UP for these
non-negative values). PostgreSQL divides NUMERIC to at least 16 significant
digits; a quotient of two-decimal operands is either exactly on a half-cent
or more than 1e-10 away from one (for any sum below 1e9), so rounding the
16-digit quotient equals rounding the exact one, as the pure module does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# SQL is written out literally (schema ``results``, scratch table
# ``gen_results``): no statement is assembled from strings at run time.

ISSUE_GENERATION = text(
    "UPDATE results.exams SET last_generation = last_generation + 1 "
    "WHERE id = :exam_id RETURNING last_generation"
)

SNAPSHOT = text(
    "SELECT marks_version, status, clock_timestamp() AS started_at "
    "FROM results.exams WHERE id = :exam_id"
)

# Per entry (one LATERAL, so the planner memoizes it: an exam has a few
# thousand distinct (subject, status, mark) triples, not one per student): the
# mark counted (0 when absent, NULL when exempt), the subject percentage, its
# band (a lateral join over the exam's few bands), passed, and the entry as a
# JSON array text. Per student: sums, and the subject list aggregated as text
# in exam order and parsed into jsonb once. Then overall percentage, grade
# (lateral again), gpa, passed and rank (a window over the rounded percentage,
# only among complete results that have one).
#
# ``subjects`` is stored positionally, ``[[code, status, mark, percentage,
# grade, points, passed], ...]``; reads expand it with the SQL function
# ``results.subject_results`` (migration 0002). Against objects with keys it
# halves the bytes built, parsed, compared and written (WAL) per generation
# (scripts/bench_generation.py).
COMPUTE = text(
    """
CREATE TEMP TABLE gen_results AS
WITH subject AS (
    SELECT s.code, s.position, s.max_mark, s.pass_mark, s.credits
    FROM results.subjects s WHERE s.exam_id = :exam_id
),
band AS (
    -- Each band with the bottom of the next one up: percentage p gets the band
    -- with min_percent <= p < next_min, i.e. the largest min_percent <= p.
    SELECT g.grade, g.points, g.min_percent,
           coalesce(lead(g.min_percent) OVER (ORDER BY g.min_percent), 'Infinity') AS next_min
    FROM results.grade_bands g WHERE g.exam_id = :exam_id
),
graded AS (
    SELECT m.student_id, s.position, s.max_mark, s.credits, x.mark, x.points, x.passed, x.obj
    FROM results.marks m
    JOIN subject s ON s.code = m.subject_code
    CROSS JOIN LATERAL (
        SELECT v.mark, b.points, v.passed,
               -- [code, status, mark, percentage, grade, points, passed]
               '[' || to_json(s.code)::text || ',"' || m.status || '",'
               || coalesce(v.mark::text, 'null') || ','
               || coalesce(v.pct::text, 'null') || ','
               || coalesce(to_json(b.grade)::text, 'null') || ','
               || coalesce(b.points::text, 'null') || ','
               || coalesce(v.passed::text, 'null') || ']' AS obj
        FROM (
            SELECT c.mark,
                   round(100 * c.mark / s.max_mark, 2) AS pct,
                   CASE WHEN m.status <> 'exempt'
                        THEN m.status = 'present' AND m.mark >= s.pass_mark END AS passed
            -- absent counts 0 of max_mark; exempt counts nothing (NULL drops out of sums)
            FROM (SELECT CASE m.status WHEN 'present' THEN m.mark WHEN 'absent' THEN 0.00 END
                         AS mark) c
        ) v
        LEFT JOIN LATERAL (
            SELECT band.grade, band.points FROM band
            WHERE v.pct >= band.min_percent AND v.pct < band.next_min
        ) b ON true
        LIMIT 1
    ) x
    WHERE m.exam_id = :exam_id
),
per_student AS (
    SELECT g.student_id,
           count(*) = (SELECT count(*) FROM subject) AS complete,
           count(g.mark) AS counted,
           coalesce(sum(g.mark), 0.00) AS total,
           coalesce(sum(g.max_mark) FILTER (WHERE g.mark IS NOT NULL), 0.00) AS max_total,
           sum(g.points * g.credits) AS weighted_points,
           sum(g.credits) FILTER (WHERE g.mark IS NOT NULL) AS credits,
           bool_and(g.passed) AS all_passed,
           ('[' || string_agg(g.obj, ',' ORDER BY g.position) || ']')::jsonb AS subjects
    FROM graded g
    GROUP BY g.student_id
),
scored AS (
    SELECT p.student_id, p.complete, p.total, p.max_total, p.all_passed, p.subjects,
           CASE WHEN p.complete AND p.counted > 0
                THEN round(100 * p.total / p.max_total, 2) END AS percentage,
           CASE WHEN p.complete AND p.counted > 0
                THEN round(p.weighted_points / p.credits, 2) END AS gpa
    FROM per_student p
)
SELECT sc.student_id,
       st.student_number,
       CASE WHEN sc.complete THEN 'complete' ELSE 'incomplete' END AS status,
       CASE WHEN sc.complete THEN sc.total END AS total,
       CASE WHEN sc.complete THEN sc.max_total END AS max_total,
       sc.percentage,
       b.grade,
       sc.gpa,
       CASE WHEN sc.percentage IS NOT NULL
            THEN sc.all_passed AND sc.percentage >= e.pass_percent END AS passed,
       (CASE WHEN sc.percentage IS NOT NULL THEN
            CASE e.rank_method WHEN 'dense' THEN dense_rank() OVER w ELSE rank() OVER w END
        END)::integer AS rank,
       sc.subjects
FROM scored sc
JOIN results.exams e ON e.id = :exam_id
JOIN results.students st ON st.user_id = sc.student_id
LEFT JOIN LATERAL (
    SELECT band.grade FROM band
    WHERE sc.percentage >= band.min_percent AND sc.percentage < band.next_min
) b ON true
WINDOW w AS (PARTITION BY sc.percentage IS NULL ORDER BY sc.percentage DESC)
"""
)

# One row per candidate (the unique index says so) and the prune's probe path.
INDEX_SCRATCH = text("CREATE UNIQUE INDEX ON gen_results (student_id)")

COUNTS = text(
    """
SELECT count(*) AS candidates,
       count(*) FILTER (WHERE status = 'complete') AS complete,
       count(*) FILTER (WHERE status = 'incomplete') AS incomplete,
       clock_timestamp() AS computed_at
FROM gen_results
"""
)

CREATE_CHANGED = text(
    "CREATE TEMP TABLE gen_changed "
    "(student_id uuid, student_number text, change text) ON COMMIT DROP"
)

# Only rows whose values differ are written: an unchanged row keeps its
# generation, gets no new version, and is not announced in results.updated.
# The scratch table has no statistics and the results table's lag right after
# a first generation wrote 100k rows; the prune's anti join is safe with any
# estimate because the scratch table is indexed on student_id (a nested loop
# then probes the index instead of scanning 100k rows per row: O(n^2)).
_WRITE_CTES = """
WITH upserted AS (
    INSERT INTO results.results AS r
        (exam_id, student_id, student_number, status, total, max_total, percentage, grade,
         gpa, passed, rank, subjects, generation, updated_at)
    SELECT :exam_id, g.student_id, g.student_number, g.status, g.total, g.max_total,
           g.percentage, g.grade, g.gpa, g.passed, g.rank, g.subjects, :generation, now()
    FROM gen_results g
    ON CONFLICT (exam_id, student_id) DO UPDATE SET
        student_number = excluded.student_number, status = excluded.status,
        total = excluded.total, max_total = excluded.max_total,
        percentage = excluded.percentage, grade = excluded.grade, gpa = excluded.gpa,
        passed = excluded.passed, rank = excluded.rank, subjects = excluded.subjects,
        generation = excluded.generation, updated_at = excluded.updated_at
    WHERE (r.student_number, r.status, r.total, r.max_total, r.percentage, r.grade, r.gpa,
           r.passed, r.rank, r.subjects)
          IS DISTINCT FROM
          (excluded.student_number, excluded.status, excluded.total, excluded.max_total,
           excluded.percentage, excluded.grade, excluded.gpa, excluded.passed, excluded.rank,
           excluded.subjects)
    RETURNING r.student_id, r.student_number, (r.xmax = 0) AS inserted
),
removed AS (
    DELETE FROM results.results r
    WHERE r.exam_id = :exam_id
      AND NOT EXISTS (SELECT 1 FROM gen_results g WHERE g.student_id = r.student_id)
    RETURNING r.student_id, r.student_number
),
changes AS (
    SELECT student_id, student_number,
           CASE WHEN inserted THEN 'added' ELSE 'updated' END AS change
    FROM upserted
    UNION ALL
    SELECT student_id, student_number, 'removed' FROM removed
)
"""

WRITE_COUNTING = text(
    _WRITE_CTES
    + "SELECT count(*) AS changed, count(*) FILTER (WHERE change = 'removed') AS removed "
    "FROM changes"
)
"""The write when nobody is to be told (exam not published): counts only."""

WRITE_COLLECTING = text(
    _WRITE_CTES  # noqa: S608 (constant SQL, nothing from input)
    + "INSERT INTO gen_changed (student_id, student_number, change) "
    "SELECT student_id, student_number, change FROM changes"
)
"""The write of a published exam: who changed goes to ``gen_changed`` for results.updated."""

CHANGED_COUNTS = text(
    "SELECT count(*) AS changed, count(*) FILTER (WHERE change = 'removed') AS removed "
    "FROM gen_changed"
)

# The fence. READ COMMITTED: the UPDATE waits for any concurrent writer of the
# exam row, then re-evaluates the WHERE on the newest version, so a token
# issued by a newer generation (even one that has not finished) makes this
# match nothing. The row stays locked until our commit.
FENCE = text(
    """
UPDATE results.exams
SET results_version = :marks_version, results_generated_at = now()
WHERE id = :exam_id AND last_generation = :generation
RETURNING status, code, name, results_generated_at
"""
)

RECORD_RUN = text(
    """
INSERT INTO results.generation_runs
    (exam_id, generation, marks_version, candidates, complete, incomplete, changed, removed,
     started_at, computed_at, committed_at, runner)
VALUES (:exam_id, :generation, :marks_version, :candidates, :complete, :incomplete, :changed,
        :removed, :started_at, :computed_at, clock_timestamp(), :runner)
"""
)

DROP_SCRATCH = text("DROP TABLE IF EXISTS pg_temp.gen_results")


class ExamNotFound(LookupError):
    """The exam does not exist (any more)."""


class PublishedMeanwhile(Exception):
    """The exam was published between compute and write: write again, collecting
    the changed students for ``results.updated``."""


@dataclass(frozen=True, slots=True)
class ComputedResults:
    """What a computation left in ``gen_results``, and the snapshot it came from."""

    exam_id: uuid.UUID
    marks_version: int
    exam_status: str
    """Status in the snapshot; the write collects changed students only if published."""
    candidates: int
    complete: int
    incomplete: int
    started_at: datetime
    computed_at: datetime


@dataclass(frozen=True, slots=True)
class WrittenResults:
    """A generation that passed the fence and is about to commit."""

    generation: int
    changed: int
    removed: int
    exam_status: str
    exam_code: str
    exam_name: str
    generated_at: datetime


async def issue_generation(conn: AsyncConnection, exam_id: uuid.UUID) -> int:
    """Issues and commits the next fencing token of the exam."""
    async with conn.begin():
        token = await conn.scalar(ISSUE_GENERATION, {"exam_id": exam_id})
    if token is None:
        raise ExamNotFound(exam_id)
    return int(token)


async def compute_results(
    conn: AsyncConnection, exam_id: uuid.UUID, *, work_mem: str | None = None
) -> ComputedResults:
    """Computes every candidate's result into ``gen_results`` from one snapshot.

    The temp table outlives this transaction (it belongs to the session) and
    is dropped by :func:`drop_scratch`.
    """
    await conn.execute(DROP_SCRATCH)
    await conn.commit()
    await conn.execution_options(isolation_level="REPEATABLE READ")
    try:
        async with conn.begin():
            # Sorts of a 100k-student exam stay in memory with ~256MB; JIT
            # compilation costs more than it saves on this query shape.
            await conn.execute(
                text("SELECT set_config('jit', 'off', true), set_config('work_mem', :v, true)"),
                {"v": work_mem or "64MB"},
            )
            # The first query fixes the snapshot; the version read here and the
            # marks read below are the same database state.
            snap = (await conn.execute(SNAPSHOT, {"exam_id": exam_id})).one_or_none()
            if snap is None:
                raise ExamNotFound(exam_id)
            await conn.execute(COMPUTE, {"exam_id": exam_id})
            await conn.execute(INDEX_SCRATCH)
            counts = (await conn.execute(COUNTS)).one()
    finally:
        await conn.execution_options(isolation_level="READ COMMITTED")
    return ComputedResults(
        exam_id=exam_id,
        marks_version=int(snap.marks_version),
        exam_status=str(snap.status),
        candidates=int(counts.candidates),
        complete=int(counts.complete),
        incomplete=int(counts.incomplete),
        started_at=snap.started_at,
        computed_at=counts.computed_at,
    )


async def write_results(
    conn: AsyncConnection,
    computed: ComputedResults,
    generation: int,
    *,
    runner: str,
    collect: bool,
    work_mem: str | None = None,
) -> WrittenResults | None:
    """Upserts changed rows, prunes non-candidates and passes the fence.

    Must run inside a transaction the caller commits (so it can add outbox
    events first). Returns None when the fence refused the token; the caller
    must then roll back, which undoes every row written here. With
    ``collect``, ``gen_changed`` (student_id, student_number, change) lists
    what changed until the commit; without it, :class:`PublishedMeanwhile` is
    raised if the exam turns out to be published (roll back and collect).
    """
    params = {"exam_id": computed.exam_id, "generation": generation}
    if work_mem:
        await conn.execute(text("SELECT set_config('work_mem', :v, true)"), {"v": work_mem})
    if collect:
        await conn.execute(CREATE_CHANGED)
        await conn.execute(WRITE_COLLECTING, params)
        changed = (await conn.execute(CHANGED_COUNTS)).one()
    else:
        changed = (await conn.execute(WRITE_COUNTING, params)).one()
    fenced = (
        await conn.execute(FENCE, {**params, "marks_version": computed.marks_version})
    ).one_or_none()
    if fenced is None:
        return None
    if fenced.status == "published" and changed.changed and not collect:
        raise PublishedMeanwhile(computed.exam_id)
    await conn.execute(
        RECORD_RUN,
        {
            **params,
            "marks_version": computed.marks_version,
            "candidates": computed.candidates,
            "complete": computed.complete,
            "incomplete": computed.incomplete,
            "changed": int(changed.changed),
            "removed": int(changed.removed),
            "started_at": computed.started_at,
            "computed_at": computed.computed_at,
            "runner": runner,
        },
    )
    return WrittenResults(
        generation=generation,
        changed=int(changed.changed),
        removed=int(changed.removed),
        exam_status=str(fenced.status),
        exam_code=str(fenced.code),
        exam_name=str(fenced.name),
        generated_at=fenced.results_generated_at,
    )


async def drop_scratch(conn: AsyncConnection) -> None:
    """Drops ``gen_results`` (the connection goes back to a shared pool)."""
    await conn.execute(DROP_SCRATCH)
    await conn.commit()
