"""Benchmark of result generation: the production path against a naive baseline.

For 10 000 and 100 000 students x 8 subjects, in a throwaway database:

* ``fenced``: the production path (:meth:`GenerationRunner.generate`: token,
  REPEATABLE READ compute into a temp table, upsert of changed rows only,
  prune, fence, bookkeeping), first run on an empty table, then a re-run
  after 1 % of the marks changed;
* ``baseline``: one hand-written ``INSERT ... SELECT ... ON CONFLICT DO
  UPDATE`` (same arithmetic, no snapshot bookkeeping, no fence, rewrites
  every row) into a copy of the results table, first run and re-run.

Prints seconds, the speed ratio to the baseline (>= 0.8 is the target), rows
written, and the Python process's peak memory (tracemalloc peak per run and
ru_maxrss) to show memory is flat in the number of students: the work is in
PostgreSQL. Usage: ``uv run python scripts/bench_generation.py [--sizes 10000,100000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import time
import tracemalloc
import uuid
from dataclasses import dataclass
from pathlib import Path

from results_service.generation import sql as gen_sql
from results_service.generation.runner import GenerationRunner, RunnerConfig
from results_service.settings import ResultsSettings
from service_kit.db import Database
from service_kit.migrations import upgrade_to_head
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
ALEMBIC_INI = Path(__file__).resolve().parent.parent / "services/results/alembic.ini"
SUBJECTS = 8
CHANGE_FRACTION = 0.01

# The naive single statement: the same SELECT as the production compute,
# inserted straight into the table, every row rewritten on conflict.
_SELECT = gen_sql.COMPUTE.text.split("AS\n", 1)[1]
_COLUMNS = (
    "student_id, student_number, status, total, max_total, percentage, grade, gpa, "
    "passed, rank, subjects"
)
BASELINE = text(
    f"""
INSERT INTO results.results_baseline (exam_id, {_COLUMNS}, generation, updated_at)
SELECT :exam_id, {_COLUMNS}, :generation, now() FROM ({_SELECT}) computed
ON CONFLICT (exam_id, student_id) DO UPDATE SET
    student_number = excluded.student_number, status = excluded.status,
    total = excluded.total, max_total = excluded.max_total,
    percentage = excluded.percentage, grade = excluded.grade, gpa = excluded.gpa,
    passed = excluded.passed, rank = excluded.rank, subjects = excluded.subjects,
    generation = excluded.generation, updated_at = excluded.updated_at
"""
)


@dataclass
class Run:
    size: int
    path: str
    run: str
    seconds: float
    rows_written: int
    py_peak_mib: float
    maxrss_mib: float


async def _admin(statement: str) -> None:
    engine = create_async_engine(
        f"{SERVER}/postgres", isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    async with engine.connect() as conn:
        await conn.execute(text(statement))
    await engine.dispose()


async def seed(conn: AsyncConnection, size: int) -> uuid.UUID:
    exam_id = uuid.uuid4()
    async with conn.begin():
        await conn.execute(
            text(
                "INSERT INTO results.exams (id, code, name, pass_percent, rank_method, created_by) "
                "VALUES (:e, :code, 'Bench', 40, 'competition', :e)"
            ),
            {"e": exam_id, "code": f"BENCH-{size}-{exam_id.hex[:6]}"},
        )
        await conn.execute(
            text(
                "INSERT INTO results.subjects (exam_id, code, position, name, max_mark, pass_mark, "
                "credits) SELECT :e, 'SUB' || i, i, 'Subject ' || i, "
                "CASE WHEN i % 2 = 0 THEN 100 ELSE 50 END, "
                "CASE WHEN i % 2 = 0 THEN 40 ELSE 20 END, 1 + i % 3 "
                "FROM generate_series(0, :n - 1) i"
            ),
            {"e": exam_id, "n": SUBJECTS},
        )
        await conn.execute(
            text(
                "INSERT INTO results.grade_bands (exam_id, grade, min_percent, points) "
                "VALUES (:e, 'A', 80, 4), (:e, 'B', 60, 3), "
                "(:e, 'C', 40, 2), (:e, 'D', 30, 1), (:e, 'F', 0, 0)"
            ),
            {"e": exam_id},
        )
        await conn.execute(
            text(
                "INSERT INTO results.students "
                "(user_id, student_number, full_name, active, source_version) "
                "SELECT gen_random_uuid(), :p || lpad(i::text, 7, '0'), 'Student ' || i, true, 1 "
                "FROM generate_series(1, :n) i"
            ),
            {"n": size, "p": f"B{exam_id.hex[:4]}-"},
        )
        # 94 % present (uniform marks), 3 % absent, 2 % exempt, 1 % missing.
        await conn.execute(
            text(
                """
INSERT INTO results.marks (exam_id, student_id, subject_code, status, mark, updated_by)
SELECT :e, st.user_id, s.code,
       CASE WHEN r < 0.94 THEN 'present' WHEN r < 0.97 THEN 'absent' ELSE 'exempt' END,
       CASE WHEN r < 0.94 THEN round((random() * s.max_mark)::numeric, 2) END,
       :e
FROM results.students st
CROSS JOIN results.subjects s
CROSS JOIN LATERAL (SELECT random() AS r) x
WHERE s.exam_id = :e AND st.student_number LIKE :p || '%' AND x.r < 0.99
"""
            ),
            {"e": exam_id, "p": f"B{exam_id.hex[:4]}-"},
        )
        await conn.execute(
            text("UPDATE results.exams SET marks_version = 1 WHERE id = :e"), {"e": exam_id}
        )
    async with conn.begin():
        await conn.execute(text("ANALYZE results.marks"))
        await conn.execute(text("ANALYZE results.students"))
    return exam_id


async def change_marks(conn: AsyncConnection, exam_id: uuid.UUID) -> int:
    async with conn.begin():
        await conn.execute(
            text("SELECT 1 FROM results.exams WHERE id = :e FOR UPDATE"), {"e": exam_id}
        )
        changed = await conn.execute(
            text(
                """
UPDATE results.marks m SET status = 'present',
       mark = round((random() * s.max_mark)::numeric, 2), updated_at = now()
FROM results.subjects s
WHERE m.exam_id = :e AND s.exam_id = m.exam_id AND s.code = m.subject_code
  AND random() < :f
"""
            ),
            {"e": exam_id, "f": CHANGE_FRACTION},
        )
        await conn.execute(
            text("UPDATE results.exams SET marks_version = marks_version + 1 WHERE id = :e"),
            {"e": exam_id},
        )
    return int(changed.rowcount or 0)


def _mem() -> tuple[float, float]:
    _, peak = tracemalloc.get_traced_memory()
    maxrss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20, maxrss_kib / 1024


async def timed_fenced(
    runner: GenerationRunner, db: Database, exam_id: uuid.UUID
) -> tuple[float, int]:
    tracemalloc.reset_peak()
    async with db.primary.connect() as conn:
        started = time.perf_counter()
        written = await runner.generate(conn, exam_id)
        seconds = time.perf_counter() - started
    assert written is not None
    return seconds, written.changed


async def timed_baseline(db: Database, exam_id: uuid.UUID, generation: int) -> tuple[float, int]:
    tracemalloc.reset_peak()
    async with db.primary.connect() as conn:
        started = time.perf_counter()
        async with conn.begin():
            await conn.execute(
                text("SELECT set_config('work_mem', '256MB', true), set_config('jit', 'off', true)")
            )
            result = await conn.execute(BASELINE, {"exam_id": exam_id, "generation": generation})
        seconds = time.perf_counter() - started
    return seconds, int(result.rowcount or 0)


async def warm_up(db: Database, exam_id: uuid.UUID) -> None:
    """Runs the computation once untimed, so both timed paths start with warm caches."""
    async with db.primary.connect() as conn:
        await conn.execute(text(f"SELECT count(*) FROM ({_SELECT}) computed"), {"exam_id": exam_id})
        await conn.commit()


async def reset_results(db: Database) -> None:
    """Empties both result tables (a first run starts from nothing)."""
    async with db.primary.begin() as conn:
        await conn.execute(text("TRUNCATE results.results, results.results_baseline"))
        await conn.execute(text("DELETE FROM results.generation_runs"))


async def timed_pair(
    db: Database, runner: GenerationRunner, exam_id: uuid.UUID, generation: int, rep: int
) -> dict[str, tuple[float, int, float, float]]:
    """Baseline and fenced runs on the same state, in alternating order per repetition."""
    await warm_up(db, exam_id)
    out: dict[str, tuple[float, int, float, float]] = {}
    order = ("baseline", "fenced") if rep % 2 == 0 else ("fenced", "baseline")
    for path in order:
        if path == "baseline":
            seconds, rows = await timed_baseline(db, exam_id, generation)
        else:
            seconds, rows = await timed_fenced(runner, db, exam_id)
        out[path] = (seconds, rows, *_mem())
    return out


async def bench_size(
    db: Database, runner: GenerationRunner, size: int, runs: list[Run], reps: int
) -> None:
    async with db.primary.connect() as conn:
        started = time.perf_counter()
        exam_id = await seed(conn, size)
    print(f"  seeded {size} students x {SUBJECTS} subjects in {time.perf_counter() - started:.1f}s")
    first = "first run (empty table)"
    rerun = f"re-run, {CHANGE_FRACTION:.0%} of marks changed"
    for rep in range(reps):
        await reset_results(db)
        for path, (seconds, rows, peak, rss) in (
            await timed_pair(db, runner, exam_id, 1, rep)
        ).items():
            runs.append(Run(size, path, first, seconds, rows, peak, rss))
    for rep in range(reps):
        async with db.primary.connect() as conn:
            changed = await change_marks(conn, exam_id)
        pair = await timed_pair(db, runner, exam_id, 2 + rep, rep)
        print(f"  re-run {rep + 1}: {changed} marks changed")
        for path, (seconds, rows, peak, rss) in pair.items():
            runs.append(Run(size, path, rerun, seconds, rows, peak, rss))


def _median(values: list[float]) -> float:
    return statistics.median(values)


def summarize(runs: list[Run]) -> list[Run]:
    """One row per (size, run, path): median seconds over the repetitions."""
    keys = list(dict.fromkeys((r.size, r.run, r.path) for r in runs))
    out = []
    for size, run, path in keys:
        group = [r for r in runs if (r.size, r.run, r.path) == (size, run, path)]
        out.append(
            Run(
                size,
                path,
                run,
                _median([r.seconds for r in group]),
                int(_median([r.rows_written for r in group])),
                max(r.py_peak_mib for r in group),
                max(r.maxrss_mib for r in group),
            )
        )
    return out


def print_table(runs: list[Run], reps: int) -> None:
    print()
    print(f"median of {reps} runs each (baseline and fenced alternate who goes first)")
    header = (
        f"{'students':>9} | {'run':<30} | {'path':<8} | {'seconds':>8} | {'speed vs base':>13} | "
        f"{'rows written':>12} | {'py peak MiB':>11} | {'maxrss MiB':>10}"
    )
    print(header)
    print("-" * len(header))
    base = {(r.size, r.run): r.seconds for r in runs if r.path == "baseline"}
    for r in runs:
        ratio = base[(r.size, r.run)] / r.seconds if r.seconds else float("inf")
        print(
            f"{r.size:>9} | {r.run:<30} | {r.path:<8} | {r.seconds:>8.2f} | {ratio:>12.2f}x | "
            f"{r.rows_written:>12} | {r.py_peak_mib:>11.2f} | {r.maxrss_mib:>10.1f}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each measurement")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    name = f"bench_generation_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    url = f"{SERVER}/{name}"
    try:
        await upgrade_to_head(ALEMBIC_INI, url)
        db = Database(ResultsSettings(database_url=url, db_statement_timeout_ms=0, log_json=False))
        async with db.primary.begin() as conn:
            await conn.execute(
                text("CREATE TABLE results.results_baseline (LIKE results.results INCLUDING ALL)")
            )
        runner = GenerationRunner(db, None, config=RunnerConfig())
        tracemalloc.start()
        runs: list[Run] = []
        for size in sizes:
            print(f"{size} students:")
            await bench_size(db, runner, size, runs, args.reps)
        tracemalloc.stop()
        await db.dispose()
        runs = summarize(runs)
        print_table(runs, args.reps)
        fenced = [r for r in runs if r.path == "fenced"]
        largest = max(sizes)
        worst = min(
            next(
                b.seconds
                for b in runs
                if b.path == "baseline" and (b.size, b.run) == (r.size, r.run)
            )
            / r.seconds
            for r in fenced
        )
        slowest_largest = max(r.seconds for r in fenced if r.size == largest)
        peaks = {r.size: max(x.py_peak_mib for x in fenced if x.size == r.size) for r in fenced}
        print()
        print(f"worst speed ratio vs baseline: {worst:.2f}x (target >= 0.80x)")
        print(f"slowest fenced run at {largest} students: {slowest_largest:.2f}s (target <= 10s)")
        print(
            "Python peak memory by size (MiB): "
            + ", ".join(f"{k}: {v:.2f}" for k, v in sorted(peaks.items()))
        )
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
