"""Result rows and generation bookkeeping (schema ``results``, migration 0002).

``results`` holds one row per candidate of an exam, as the last committed
generation left it; ``generation`` is the fencing token of the generation
that last *changed* the row (unchanged rows are never rewritten, so they keep
an older number). ``generation_runs`` records every committed generation:
which marks it reflected and what it changed, which is what coalesced callers
of ``POST .../results/generate`` are answered with.

Both tables join :data:`results_service.store.tables.metadata`, so one
``MetaData`` describes the whole schema.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    Row,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.store.tables import PERCENT, POINTS, exams, metadata

TOTAL = Numeric(12, 2, asdecimal=True)

RANK_SORT_SENTINEL = 2_147_483_647
"""Rank used for sorting rows without one: ``coalesce(rank, this)`` puts them last,
so the listing's keyset is a plain row comparison an index can serve."""

STREAM_BATCH = 5_000
"""Rows per fetch of the export's server-side cursor (and per piece of its body)."""

results = Table(
    "results",
    metadata,
    Column(
        "exam_id",
        UUID(as_uuid=True),
        ForeignKey("exams.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("student_id", UUID(as_uuid=True), nullable=False, comment="auth's user id."),
    # "C" collation: byte order, the same in every locale and in Python, so the
    # listing order and its cursors never depend on the server's locale.
    Column("student_number", Text(collation="C"), nullable=False),
    Column("status", Text, nullable=False),
    Column("total", TOTAL),
    Column("max_total", TOTAL),
    Column("percentage", PERCENT),
    Column("grade", Text),
    Column("gpa", POINTS),
    Column("passed", Boolean),
    Column("rank", Integer),
    Column(
        "subjects",
        JSONB,
        nullable=False,
        comment="[[code, status, mark, percentage, grade, points, passed], ...] in exam "
        "order; results.subject_results() expands it.",
    ),
    Column(
        "generation",
        BigInteger,
        nullable=False,
        comment="Fencing token of the generation that last changed this row.",
    ),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Student first: the same index arbitrates the upsert's ON CONFLICT (exam_id,
    # student_id) and serves GET /me/results; an exam's rows are reached through
    # the exam-first indexes below. Three indexes, not four, to maintain on the
    # rows a generation rewrites when ranks shift.
    PrimaryKeyConstraint("student_id", "exam_id"),
    CheckConstraint("status IN ('complete', 'incomplete')", name="status"),
    # GET /exams/{id}/results: rank (nulls last), then student_number, keyset-paginated.
    Index(
        "ix_results_exam_id_rank_student_number",
        "exam_id",
        text(f"coalesce(rank, {RANK_SORT_SENTINEL})"),
        "student_number",
    ),
    # GET /exams/{id}/results/{student_number}.
    # Not unique: two students swapping numbers in auth would collide mid-upsert.
    Index("ix_results_exam_id_student_number", "exam_id", "student_number"),
    postgresql_with={"fillfactor": "90"},
    comment="Computed results: one row per candidate, rewritten only when a value changes.",
)

generation_runs = Table(
    "generation_runs",
    metadata,
    Column(
        "exam_id",
        UUID(as_uuid=True),
        ForeignKey("exams.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("generation", BigInteger, nullable=False, comment="The fencing token it ran with."),
    Column("marks_version", BigInteger, nullable=False, comment="marks_version it reflected."),
    Column("candidates", Integer, nullable=False),
    Column("complete", Integer, nullable=False),
    Column("incomplete", Integer, nullable=False),
    Column("changed", Integer, nullable=False, comment="Rows inserted, updated or deleted."),
    Column("removed", Integer, nullable=False, comment="Rows deleted (no longer candidates)."),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("computed_at", DateTime(timezone=True), nullable=False),
    Column("committed_at", DateTime(timezone=True), nullable=False),
    Column("runner", Text, nullable=False, comment="host:pid that ran it (diagnostics)."),
    PrimaryKeyConstraint("exam_id", "generation"),
    comment="Every committed generation of an exam's results.",
)

# The publication scheduler's query: due scheduled exams (a handful at a time).
Index(
    "ix_exams_publish_at_scheduled",
    exams.c.publish_at,
    postgresql_where=exams.c.status == "scheduled",
)


# -- reads -------------------------------------------------------------------------------
# SQL is written out literally (schema ``results``); the keyset variants are
# separate statements rather than strings assembled at run time.

# One result as the API's JSON, built by PostgreSQL: numbers keep their NUMERIC
# text (two decimals), keys are in API order, subjects expanded in exam order.
# ``gen`` is the exam's latest generation as seen by the same statement, so a
# body is cached under the generation it was read at (see api/results.py).
_SELECT_ROWS = """
SELECT r.exam_id,
       json_build_object(
           'exam_id', r.exam_id, 'student_number', r.student_number,
           'student_name', st.full_name, 'status', r.status, 'total', r.total,
           'max_total', r.max_total, 'percentage', r.percentage, 'grade', r.grade,
           'gpa', r.gpa, 'passed', r.passed, 'rank', r.rank, 'generation', r.generation,
           'subjects', results.subject_results(r.subjects)
       )::text AS body,
       r.student_id, r.student_number, coalesce(r.rank, 2147483647) AS rank_key,
       (SELECT max(g.generation) FROM results.generation_runs g WHERE g.exam_id = r.exam_id)
           AS gen
FROM results.results r
LEFT JOIN results.students st ON st.user_id = r.student_id
"""

_FIRST_PAGE = text(
    _SELECT_ROWS + "WHERE r.exam_id = :exam_id "
    "ORDER BY coalesce(r.rank, 2147483647), r.student_number LIMIT :limit"
)
_NEXT_PAGE = text(
    _SELECT_ROWS + "WHERE r.exam_id = :exam_id "
    "AND (coalesce(r.rank, 2147483647), r.student_number) > (:after_rank, :after_number) "
    "ORDER BY coalesce(r.rank, 2147483647), r.student_number LIMIT :limit"
)
_ONE = text(_SELECT_ROWS + "WHERE r.exam_id = :exam_id AND r.student_number = :number")
_OF_STUDENT = text(
    _SELECT_ROWS + "WHERE r.student_id = :student_id AND r.exam_id = ANY(CAST(:exam_ids AS uuid[]))"
)
# The export: the same JSON as ``_SELECT_ROWS`` builds, byte for byte, but the
# subjects are expanded in Python from the stored compact text (``_lines_builder``):
# ``results.subject_results`` (a SQL function per row, 56 jsonb extractions each) was
# nine tenths of the statement's time (2.4 of 2.8 s for 60,000 rows x 8 subjects).
# The head (every other field) is text put together the way ``json_build_object`` prints
# it (strings through ``to_json``, numbers and booleans as their text, NULL as null):
# json_build_object looks up every argument's type on every row, a third slower.
# Ordered by ``ix_results_exam_id_rank_student_number`` (an index scan, no sort).
_STREAM_SQL = """
SELECT '{"exam_id" : "' || r.exam_id::text
       || '", "student_number" : ' || to_json(r.student_number)::text
       || ', "student_name" : ' || coalesce(to_json(st.full_name)::text, 'null')
       || ', "status" : ' || to_json(r.status)::text
       || ', "total" : ' || coalesce(r.total::text, 'null')
       || ', "max_total" : ' || coalesce(r.max_total::text, 'null')
       || ', "percentage" : ' || coalesce(r.percentage::text, 'null')
       || ', "grade" : ' || coalesce(to_json(r.grade)::text, 'null')
       || ', "gpa" : ' || coalesce(r.gpa::text, 'null')
       || ', "passed" : ' || coalesce(r.passed::text, 'null')
       || ', "rank" : ' || coalesce(r.rank::text, 'null')
       || ', "generation" : ' || r.generation::text || '}' AS head,
       r.subjects::text AS subjects, jsonb_array_length(r.subjects) AS n
FROM results.results r
LEFT JOIN results.students st ON st.user_id = r.student_id
WHERE r.exam_id = $1
ORDER BY coalesce(r.rank, 2147483647), r.student_number
"""

_HEAD = text(
    """
SELECT e.id, e.status, e.published_at,
       (SELECT max(g.generation) FROM results.generation_runs g WHERE g.exam_id = e.id)
           AS generation
FROM results.exams e WHERE e.id = :exam_id
"""
)

_PUBLISHED_KEYS = """
SELECT r.exam_id, r.student_number, e.published_at,
       (SELECT max(g.generation) FROM results.generation_runs g WHERE g.exam_id = e.id) AS gen
FROM results.results r JOIN results.exams e ON e.id = r.exam_id
WHERE r.student_id = :student_id AND e.status = 'published'
"""
_MY_FIRST = text(_PUBLISHED_KEYS + "ORDER BY e.published_at DESC, e.id DESC LIMIT :limit")
_MY_NEXT = text(
    _PUBLISHED_KEYS + "AND (e.published_at, e.id) < (:after_at, :after_id) "
    "ORDER BY e.published_at DESC, e.id DESC LIMIT :limit"
)


@dataclass(frozen=True, slots=True)
class ExamHead:
    """What result reads need to know about an exam (one primary-key lookup)."""

    id: uuid.UUID
    status: str
    published_at: datetime | None
    generation: int
    """Latest committed generation (0: never generated): part of every cache key."""

    @property
    def is_published(self) -> bool:
        return self.status == "published"


@dataclass(frozen=True, slots=True)
class ResultRow:
    exam_id: uuid.UUID
    body: str
    """The result as JSON text."""
    student_id: uuid.UUID
    student_number: str
    rank_key: int
    generation: int
    """The exam's latest generation when the row was read (for cache keys)."""


async def exam_head(session: AsyncSession, exam_id: uuid.UUID) -> ExamHead | None:
    row = (await session.execute(_HEAD, {"exam_id": exam_id})).one_or_none()
    if row is None:
        return None
    return ExamHead(row.id, row.status, row.published_at, int(row.generation or 0))


def _row(r: Row[Any]) -> ResultRow:
    return ResultRow(
        r.exam_id, r.body, r.student_id, r.student_number, int(r.rank_key), int(r.gen or 0)
    )


async def result_page(
    session: AsyncSession,
    exam_id: uuid.UUID,
    *,
    after: tuple[int, str] | None,
    limit: int,
) -> list[ResultRow]:
    """Results in listing order (rank nulls last, student_number), after the keyset ``after``."""
    if after is None:
        rows = await session.execute(_FIRST_PAGE, {"exam_id": exam_id, "limit": limit})
    else:
        rows = await session.execute(
            _NEXT_PAGE,
            {"exam_id": exam_id, "limit": limit, "after_rank": after[0], "after_number": after[1]},
        )
    return [_row(r) for r in rows]


async def result_of(
    session: AsyncSession, exam_id: uuid.UUID, student_number: str
) -> ResultRow | None:
    row = (
        await session.execute(_ONE, {"exam_id": exam_id, "number": student_number})
    ).one_or_none()
    return None if row is None else _row(row)


@dataclass(frozen=True, slots=True)
class PublishedKey:
    exam_id: uuid.UUID
    student_number: str
    published_at: datetime
    generation: int


async def published_keys_of(
    session: AsyncSession,
    student_id: uuid.UUID,
    *,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[PublishedKey]:
    """The student's published results, newest publication first (keys only: bodies are cached)."""
    params: dict[str, Any] = {"student_id": student_id, "limit": limit}
    if after is None:
        rows = await session.execute(_MY_FIRST, params)
    else:
        rows = await session.execute(
            _MY_NEXT, {**params, "after_at": after[0], "after_id": after[1]}
        )
    return [
        PublishedKey(r.exam_id, r.student_number, r.published_at, int(r.gen or 0)) for r in rows
    ]


async def results_of_student(
    session: AsyncSession, student_id: uuid.UUID, exam_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, ResultRow]:
    """The student's result rows in ``exam_ids`` (whatever their publication state)."""
    if not exam_ids:
        return {}
    rows = await session.execute(
        _OF_STUDENT, {"student_id": student_id, "exam_ids": list(exam_ids)}
    )
    return {row.exam_id: row for row in map(_row, rows)}


async def stream_exam_result_lines(
    session: AsyncSession, exam_id: uuid.UUID
) -> AsyncIterator[bytes]:
    """Every result of the exam as NDJSON (each line its JSON text and a newline), in
    listing order, from a server-side cursor: one bytes piece per ``STREAM_BATCH`` rows.

    The cursor is asyncpg's, on the session's connection and in its transaction:
    SQLAlchemy's server-side cursor fetches 50 rows per round trip, which cost a third
    of the export's time.
    """
    conn = await session.connection()
    await conn.exec_driver_sql("SELECT 1")  # begins the session's transaction
    driver = (await conn.get_raw_connection()).driver_connection
    assert driver is not None
    lines = _lines_builder()
    cursor = await driver.cursor(_STREAM_SQL, exam_id)
    while rows := await cursor.fetch(STREAM_BATCH):
        yield lines(rows).encode()


# -- subjects: compact text to the API's objects ------------------------------------------
# ``results.subjects`` is ``[[code, status, mark, percentage, grade, points, passed], ...]``
# (jsonb, generation writes seven scalars per subject); its text is PostgreSQL's jsonb
# output: ``[["MATH", "present", 79.50, 79.50, "B", 3.00, true], ...]``, every value a
# JSON scalar as jsonb prints it. The API's form is what ``results.subject_results``
# (migration 0002) gives through ``json_build_object``: the same scalars' text, in the
# same order, between fixed keys. So each element's text maps to its object's text by
# placing its seven values into a template: no number is parsed, each keeps its scale.

_KEYS = ("code", "status", "mark", "percentage", "grade", "points", "passed")
_OBJECT = "{{" + ", ".join(f'"{key}" : {{}}' for key in _KEYS) + "}}"
_VALUE = r'"(?:[^"\\]|\\.)*"|[^",\[\]{}\s]+'
_ELEMENT_BODY = re.compile(", ".join([f"({_VALUE})"] * 7))
_ELEMENT = re.compile(r"\[(" + ", ".join([f"(?:{_VALUE})"] * 7) + r")\]")
_ELEMENT_CACHE_SIZE = 65_536
_ROW_BREAK = "\n"  # never in JSON text (a newline in a string is escaped)


class UnexpectedSubjects(ValueError):
    """A stored subjects value that is not the compact form generation writes."""


Rows = Sequence[tuple[str, str, int]]
"""(head: the result's JSON without ``subjects``, compact subjects text, their count)."""


def _lines_builder() -> Callable[[Rows], str]:
    """A function from a batch of rows to their NDJSON lines, each byte for byte the
    listing's JSON (whose subjects are ``results.subject_results(...)``) and a newline.

    An exam repeats the same (code, status, mark) elements over and over, so each
    element's object text is cached (bounded; every entry checked against the element
    grammar first). The batch's subject texts are cut into elements with C string
    operations: joined by newlines, row breaks marked, split on ``"], ["``. Every real
    separator is cut (no value ends in ``]``, and ``"], ["`` cannot overlap itself), so
    there are exactly as many pieces as elements and row breaks unless a string holds
    ``"], ["``, which only adds pieces: then (and for a row without subjects) each row
    is read with the full grammar instead, JSON strings with escapes, and checked
    against its text.
    """
    objects: dict[str, str] = {}

    def element(body: str) -> str:
        if body == _ROW_BREAK:
            objects[body] = body
            return body
        match = _ELEMENT_BODY.fullmatch(body)
        if match is None:
            raise UnexpectedSubjects(f"not a compact subject: [{body[:200]}]")
        found = _OBJECT.format(*match.groups())
        if len(objects) >= _ELEMENT_CACHE_SIZE:
            objects.clear()
        objects[body] = found
        return found

    def subjects_of(rows: Rows) -> list[str]:
        counts = [n for _, _, n in rows]
        if 0 not in counts:
            joined = _ROW_BREAK.join([compact for _, compact, _ in rows])
            pieces = joined[2:-2].replace("]]\n[[", "], [\n], [").split("], [")
            if (
                len(pieces) == sum(counts) + len(rows) - 1
                and joined[:2] == "[["
                and joined[-2:] == "]]"
            ):
                found = list(map(objects.get, pieces))  # a C loop: most are cached
                if None in found:
                    found = [f or element(p) for f, p in zip(found, pieces, strict=True)]
                texts = ", ".join(cast(list[str], found)).split(", \n, ")
                if len(texts) == len(rows):
                    return texts
        return [
            ", ".join([element(body) for body in _elements(compact, n)]) for _, compact, n in rows
        ]

    def lines(rows: Rows) -> str:
        return "".join(
            [
                f'{head[:-1]}, "subjects" : [{subjects}]}}\n'
                for (head, _, _), subjects in zip(rows, subjects_of(rows), strict=True)
            ]
        )

    return lines


def _elements(compact: str, count: int) -> list[str]:
    """The subjects' element texts (without brackets) by the full grammar (the slow
    path); raises UnexpectedSubjects unless the text is exactly ``count`` of them."""
    found = [m.group(1) for m in _ELEMENT.finditer(compact)]
    if len(found) != count or "[" + ", ".join(f"[{e}]" for e in found) + "]" != compact:
        raise UnexpectedSubjects(f"not a compact subject list: {compact[:200]}")
    return found


_EXAM_VERSION = text(
    """
SELECT status, updated_at, marks_version, results_version, results_generated_at, publish_at,
       published_at
FROM results.exams WHERE id = :exam_id
"""
)


@dataclass(frozen=True, slots=True)
class ExamVersion:
    """What every field of an exam's JSON depends on besides its definition (whose every
    change bumps ``updated_at`` and ``marks_version``): a cache key component."""

    status: str
    token: str

    @classmethod
    def of(
        cls,
        status: str,
        updated_at: datetime,
        marks_version: int,
        results_version: int | None,
        results_generated_at: datetime | None,
        publish_at: datetime | None,
        published_at: datetime | None,
    ) -> ExamVersion:
        parts = (updated_at, marks_version, results_version, results_generated_at, publish_at,
                 published_at)  # fmt: skip
        return cls(status, ":".join([status, *(_token_part(p) for p in parts)]))


def _token_part(value: datetime | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return f"{value.timestamp():.6f}"
    return str(value)


async def exam_version(session: AsyncSession, exam_id: uuid.UUID) -> ExamVersion | None:
    row = (await session.execute(_EXAM_VERSION, {"exam_id": exam_id})).one_or_none()
    return None if row is None else ExamVersion.of(*row)
