"""Benchmark of results' internal NDJSON export (bulk's source for exports, issue 9).

In a throwaway database: one exam of N students x 8 subjects (default 60,000; marks
written set-based, 94 % present, 3 % absent, 2 % exempt, 1 % missing), generated once;
then the endpoint's body (``GET /internal/exams/{id}/results.ndjson``, called in-process,
no HTTP) read whole, ``--reps`` times, alternating with the statement the endpoint used
before (``json_build_object`` with ``results.subject_results`` per row, SQLAlchemy's
server-side cursor) so both see the same machine load. Prints lines/s of each and
checks the bodies are the same bytes.

Usage: ``uv run --frozen python scripts/bench_results_export.py [--students 60000]
[--reps 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path

from results_service.api import results as api
from results_service.generation.runner import GenerationRunner, RunnerConfig
from results_service.settings import ResultsSettings
from results_service.store import results as store
from service_kit.db import Database
from service_kit.migrations import upgrade_to_head
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
ALEMBIC_INI = Path(__file__).resolve().parent.parent / "services/results/alembic.ini"

BEFORE = text(
    """
SELECT json_build_object(
           'exam_id', r.exam_id, 'student_number', r.student_number,
           'student_name', st.full_name, 'status', r.status, 'total', r.total,
           'max_total', r.max_total, 'percentage', r.percentage, 'grade', r.grade,
           'gpa', r.gpa, 'passed', r.passed, 'rank', r.rank, 'generation', r.generation,
           'subjects', results.subject_results(r.subjects)
       )::text AS body
FROM results.results r
LEFT JOIN results.students st ON st.user_id = r.student_id
WHERE r.exam_id = :exam_id
ORDER BY coalesce(r.rank, 2147483647), r.student_number
"""
).execution_options(yield_per=500)

SEED = [
    "INSERT INTO results.exams (id, code, name, pass_percent, rank_method, created_by) "
    "VALUES (:e, 'BENCH-EXPORT', 'Bench', 40, 'competition', :e)",
    "INSERT INTO results.subjects (exam_id, code, position, name, max_mark, pass_mark, credits) "
    "SELECT :e, 'SUB' || i, i, 'Subject ' || i, CASE WHEN i % 2 = 0 THEN 100 ELSE 50 END, "
    "CASE WHEN i % 2 = 0 THEN 40 ELSE 20 END, 1 + i % 3 FROM generate_series(0, 7) i",
    "INSERT INTO results.grade_bands (exam_id, grade, min_percent, points) VALUES "
    "(:e, 'A', 80, 4), (:e, 'B', 60, 3), (:e, 'C', 40, 2), (:e, 'D', 30, 1), (:e, 'F', 0, 0)",
    "INSERT INTO results.students (user_id, student_number, full_name, active, source_version) "
    "SELECT gen_random_uuid(), 'B-' || lpad(i::text, 7, '0'), 'Student ' || i, true, 1 "
    "FROM generate_series(1, :n) i",
    """
INSERT INTO results.marks (exam_id, student_id, subject_code, status, mark, updated_by)
SELECT :e, st.user_id, s.code,
       CASE WHEN r < 0.94 THEN 'present' WHEN r < 0.97 THEN 'absent' ELSE 'exempt' END,
       CASE WHEN r < 0.94 THEN round((random() * s.max_mark)::numeric, 2) END, :e
FROM results.students st CROSS JOIN results.subjects s CROSS JOIN LATERAL (SELECT random() AS r) x
WHERE s.exam_id = :e AND x.r < 0.99
""",
    "UPDATE results.exams SET marks_version = 1 WHERE id = :e",
]


async def _admin(statement: str) -> None:
    engine = create_async_engine(
        f"{SERVER}/postgres", isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    async with engine.connect() as conn:
        await conn.execute(text(statement))
    await engine.dispose()


async def before(db: Database, exam_id: uuid.UUID) -> tuple[float, bytes]:
    """The endpoint as it was: PostgreSQL built each line, 64 KiB pieces."""
    started = time.perf_counter()
    pieces: list[bytes] = []
    buffer: list[bytes] = []
    size = 0
    async with db.read_session() as session:
        await store.exam_head(session, exam_id)
    async with db.read_session() as session:
        async for row in await session.stream(BEFORE, {"exam_id": exam_id}):
            line = str(row.body).encode() + b"\n"
            buffer.append(line)
            size += len(line)
            if size >= 64 * 1024:
                pieces.append(b"".join(buffer))
                buffer, size = [], 0
    pieces.append(b"".join(buffer))
    return time.perf_counter() - started, b"".join(pieces)


async def after(db: Database, exam_id: uuid.UUID) -> tuple[float, bytes]:
    started = time.perf_counter()
    response = await api.export_results(exam_id, db, fresh=False)
    pieces = [piece async for piece in response.body_iterator]
    body = b"".join(p.encode() if isinstance(p, str) else bytes(p) for p in pieces)
    return time.perf_counter() - started, body


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=60_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    name = f"bench_export_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        url = f"{SERVER}/{name}"
        await upgrade_to_head(ALEMBIC_INI, url)
        db = Database(ResultsSettings(database_url=url, db_statement_timeout_ms=0, log_json=False))
        exam_id = uuid.uuid4()
        async with db.primary.begin() as conn:
            for statement in SEED:
                await conn.execute(text(statement), {"e": exam_id, "n": args.students})
        async with db.primary.connect() as conn:
            await GenerationRunner(db, None, config=RunnerConfig()).generate(conn, exam_id)
        async with db.primary.begin() as conn:
            await conn.execute(text("ANALYZE results.results"))
            await conn.execute(text("ANALYZE results.students"))
        for _ in range(args.reps):
            old_seconds, old = await before(db, exam_id)
            new_seconds, new = await after(db, exam_id)
            lines = new.count(b"\n")
            print(
                f"{lines:,} lines, {len(new) / 2**20:.1f} MiB: "
                f"before {old_seconds:.2f} s = {lines / old_seconds:,.0f} lines/s, "
                f"after {new_seconds:.2f} s = {lines / new_seconds:,.0f} lines/s, "
                f"same bytes: {new == old}"
            )
        await db.dispose()
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
