"""Benchmark of bulk imports and exports, end to end through the gateway (issue 9 item 10).

Starts its own suite (``tests/conftest.running_suite``: real processes, its own
database, bulk's API and one bulk worker as separate processes) and measures,
in ONE run:

1. a long marks CSV (default 125,000 students x 8 subjects = 1,000,000 rows):
   seconds from the start of the upload until the job has succeeded AND the
   exam's results are fresh (``results_stale`` false; no generate call: results
   regenerate by themselves), with where the time went (upload, bulk reading
   and staging, results applying chunks, regeneration);
2. the baseline: a raw ``COPY`` (asyncpg ``copy_records_to_table``) of the same
   rows into a scratch table made ``LIKE results.marks INCLUDING ALL`` (same
   column types, primary key, secondary index and checks), in the same database,
   in the same run; the ratio end to end / COPY (target >= 0.25, aim 0.5);
3. a wide file (default 100,000 students x 8 subjects = 800,000 entries), end to end;
4. the bulk worker's peak RSS (psutil, the worker and any children, every 100 ms)
   during the imports and the exports (target < 200 MB);
5. exports of the long exam as CSV and XLSX: POST to ``succeeded``, rows (one per
   student) per second (target >= 50,000/s), and the download time.

Students are written straight into results' students read model
(``results.students``, a COPY): creating 125,000 users through auth would
measure auth's password hashing and its events, not bulk.

Usage: ``uv run --frozen python scripts/bench_bulk.py [--students 125000]
[--subjects 8] [--rows N (long rows; sets --students)] [--wide-students N]``;
a quick smoke run: ``--students 2000`` (the wide file scales with --students
unless given). Exits 0 when every job succeeded; the targets are reported,
not enforced.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Coroutine
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from bulk_support import FINISHED, create_exam, ok, upload  # noqa: E402
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, bearer, running_suite  # noqa: E402

T = TypeVar("T")


class Db:
    """One asyncpg connection driven from synchronous code (its own event loop)."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.connection: asyncpg.Connection = self.run(asyncpg.connect(url))

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.run(self.connection.close())
        self.loop.close()


class RssSampler:
    """Peak resident memory of a process (and its children) every 100 ms, per phase."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.phase = "start"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.process.memory_info().rss
                for child in self.process.children(recursive=True):
                    rss += child.memory_info().rss
            except psutil.Error:
                return
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), rss)
            self._stop.wait(0.1)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _numbers(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i:07d}" for i in range(count)]


def _mark(i: int, j: int) -> str:
    return f"{(i * 7 + j * 13) % 100}.5"


def long_csv(numbers: list[str], subjects: list[str]) -> bytes:
    out = io.StringIO()
    out.write("student_number,subject_code,mark\n")
    for i, number in enumerate(numbers):
        for j, code in enumerate(subjects):
            out.write(f"{number},{code},{_mark(i, j)}\n")
    return out.getvalue().encode()


def wide_csv(numbers: list[str], subjects: list[str]) -> bytes:
    out = io.StringIO()
    out.write("student_number," + ",".join(subjects) + "\n")
    for i, number in enumerate(numbers):
        out.write(number + "," + ",".join(_mark(i, j) for j in range(len(subjects))) + "\n")
    return out.getvalue().encode()


def seed_students(db: Db, numbers: list[str]) -> dict[str, uuid.UUID]:
    """Straight into results' read model of auth's students (see the module docstring)."""
    ids = {n: uuid.uuid4() for n in numbers}
    db.run(
        db.connection.copy_records_to_table(
            "students",
            schema_name="results",
            columns=["user_id", "student_number", "full_name", "active", "source_version"],
            records=[(ids[n], n, f"Student {n}", True, 1) for n in numbers],
        )
    )
    return ids


def raw_copy(
    db: Db, ids: dict[str, uuid.UUID], numbers: list[str], subjects: list[str], exam_id: str
) -> tuple[float, list[str]]:
    """COPY the same rows into a scratch table shaped and indexed like results.marks."""
    db.run(
        db.connection.execute("CREATE TABLE public.bench_marks (LIKE results.marks INCLUDING ALL)")
    )
    indexes = [
        r["indexdef"].split(" USING ", 1)[1]
        for r in db.run(
            db.connection.fetch(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' "
                "AND tablename = 'bench_marks' ORDER BY indexname"
            )
        )
    ]
    exam, who = uuid.UUID(exam_id), uuid.uuid4()
    records = [
        (exam, ids[n], code, "present", Decimal(_mark(i, j)), who)
        for i, n in enumerate(numbers)
        for j, code in enumerate(subjects)
    ]
    started = time.perf_counter()
    db.run(
        db.connection.copy_records_to_table(
            "bench_marks",
            schema_name="public",
            columns=["exam_id", "student_id", "subject_code", "status", "mark", "updated_by"],
            records=records,
        )
    )
    seconds = time.perf_counter() - started
    db.run(db.connection.execute("DROP TABLE public.bench_marks"))
    return seconds, indexes


def run_import(
    admin: httpx.Client, db: Db, exam_id: str, body: bytes, rss: RssSampler, phase: str
) -> dict[str, Any]:
    """Upload, follow the job (API status, bulk's stage in its table) until the results
    are fresh; the timeline in seconds from the start of the upload."""
    rss.phase = phase
    t0_wall = time.time()
    started = time.perf_counter()
    job = ok(upload(admin, f"/api/v1/exams/{exam_id}/imports", body), 202)
    marks: dict[str, float] = {"upload answered": time.perf_counter() - started}
    stages: dict[str, float] = {}
    while True:
        stage = db.run(
            db.connection.fetchval(
                "SELECT stage FROM bulk.jobs WHERE id = $1", uuid.UUID(job["id"])
            )
        )
        stages.setdefault(stage, time.perf_counter() - started)
        done = ok(admin.get(f"/api/v1/jobs/{job['id']}"))
        if done["status"] in FINISHED:
            marks["job succeeded (seen)"] = time.perf_counter() - started
            break
        time.sleep(0.1)
    if done["status"] != "succeeded":
        raise SystemExit(f"import ended {done['status']}: {done}")
    while ok(admin.get(f"/api/v1/exams/{exam_id}"))["results_stale"]:
        time.sleep(0.1)
    total = time.perf_counter() - started
    rss.phase = "between"
    # Server-side timestamps (same machine, same clock) say where the time went.
    row = db.run(
        db.connection.fetchrow(
            """
            SELECT j.started_at, j.finished_at,
                   (SELECT min(processed_at) FROM results.processed_chunks c
                     WHERE c.job_id = j.id) AS first_chunk,
                   (SELECT max(processed_at) FROM results.processed_chunks c
                     WHERE c.job_id = j.id) AS last_chunk,
                   (SELECT count(*) FROM results.processed_chunks c
                     WHERE c.job_id = j.id) AS chunks,
                   (SELECT results_generated_at FROM results.exams WHERE id = j.exam_id)
                     AS generated
            FROM bulk.jobs j WHERE j.id = $1
            """,
            uuid.UUID(job["id"]),
        )
    )

    def rel(at: datetime | None) -> float | None:
        return None if at is None else at.timestamp() - t0_wall

    return {
        "job": done,
        "total": total,
        "marks": marks,
        "stages": stages,
        "started": rel(row["started_at"]),
        "first_chunk": rel(row["first_chunk"]),
        "last_chunk": rel(row["last_chunk"]),
        "finished": rel(row["finished_at"]),
        "generated": rel(row["generated"]),
        "chunks": row["chunks"],
    }


def timeline(run: dict[str, Any]) -> str:
    """Where the time went, seconds from the start of the upload."""

    def s(value: float | None) -> str:
        return "?" if value is None else f"{value:.1f}"

    st = run["stages"]
    reading_end = min((v for k, v in st.items() if k not in ("reading",)), default=None)
    return (
        f"upload answered {s(run['marks']['upload answered'])}, worker started "
        f"{s(run['started'])}, reading+staging done ~{s(reading_end)}, results applied "
        f"chunk 1 at {s(run['first_chunk'])} .. chunk {run['chunks']} at "
        f"{s(run['last_chunk'])}, job finished {s(run['finished'])}, results generated "
        f"{s(run['generated'])}, seen fresh {s(run['total'])}"
    )


def wait_job(admin: httpx.Client, job_id: str) -> dict[str, Any]:
    while True:
        job: dict[str, Any] = ok(admin.get(f"/api/v1/jobs/{job_id}"))
        if job["status"] in FINISHED:
            return job
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=125_000, help="long file's students")
    parser.add_argument("--subjects", type=int, default=8, help="subjects of both exams")
    parser.add_argument("--rows", type=int, help="long file's rows (sets --students)")
    parser.add_argument(
        "--wide-students", type=int, help="wide file's students (default 0.8 x --students)"
    )
    args = parser.parse_args()
    subjects = [f"S{i}" for i in range(1, args.subjects + 1)]
    students = args.rows // args.subjects if args.rows else args.students
    wide_students = args.wide_students or students * 4 // 5
    rows = students * len(subjects)
    entries = wide_students * len(subjects)
    figures: list[tuple[str, str]] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, running_suite(Path(tmp)) as e2e:
        db = Db(e2e.env["DATABASE_URL"].replace("+asyncpg", ""))
        worker = e2e.bulk_workers.processes[0]
        with httpx.Client(base_url=e2e.gateway, timeout=600) as anonymous:
            tokens = ok(
                anonymous.post(
                    "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
                )
            )
        long_numbers = _numbers("L", students)
        wide_numbers = _numbers("W", wide_students)
        ids = seed_students(db, long_numbers + wide_numbers)
        print(f"suite up, {len(ids):,} students seeded after {time.perf_counter() - began:.0f} s")
        exports: list[tuple[str, str]] = []
        with (
            RssSampler(worker.pid) as rss,
            httpx.Client(
                base_url=e2e.gateway, timeout=600, headers=bearer(tokens["access_token"])
            ) as admin,
        ):
            exam = create_exam(admin, [(c, 100) for c in subjects], name="Bench long")
            body = long_csv(long_numbers, subjects)
            run = run_import(admin, db, exam["id"], body, rss, "long import")
            assert run["job"]["rows_ok"] == rows, run["job"]
            end_to_end = run["total"]
            print(f"long import: {end_to_end:.1f} s; {timeline(run)}")
            copy_seconds, indexes = raw_copy(db, ids, long_numbers, subjects, exam["id"])
            figures += [
                (
                    "1. long CSV",
                    f"{students:,} students x {len(subjects)} = {rows:,} rows, "
                    f"{len(body) / 2**20:.1f} MiB",
                ),
                (
                    "   end to end (succeeded + fresh)",
                    f"{end_to_end:.1f} s = {rows / end_to_end:,.0f} rows/s",
                ),
                ("   job succeeded after", f"{run['marks']['job succeeded (seen)']:.1f} s"),
                ("   timeline (s from upload start)", timeline(run)),
                (
                    "2. raw COPY, same rows, same table shape",
                    f"{copy_seconds:.1f} s = {rows / copy_seconds:,.0f} rows/s "
                    f"(indexes: {'; '.join(indexes)})",
                ),
                (
                    "   ratio end to end / COPY",
                    f"{copy_seconds / end_to_end:.2f} (target >= 0.25, aim 0.5)",
                ),
            ]
            wide = create_exam(admin, [(c, 100) for c in subjects], name="Bench wide")
            body = wide_csv(wide_numbers, subjects)
            wide_run = run_import(admin, db, wide["id"], body, rss, "wide import")
            assert wide_run["job"]["rows_ok"] == entries, wide_run["job"]
            print(f"wide import: {wide_run['total']:.1f} s; {timeline(wide_run)}")
            figures += [
                (
                    "3. wide CSV",
                    f"{wide_students:,} students x {len(subjects)} = {entries:,} "
                    f"entries, {len(body) / 2**20:.1f} MiB",
                ),
                (
                    "   end to end (succeeded + fresh)",
                    f"{wide_run['total']:.1f} s = {entries / wide_run['total']:,.0f} entries/s",
                ),
                ("   timeline (s from upload start)", timeline(wide_run)),
            ]
            del body
            for file_format in ("csv", "xlsx"):
                rss.phase = f"export {file_format}"
                started = time.perf_counter()
                job = ok(
                    admin.post(
                        f"/api/v1/exams/{exam['id']}/exports", params={"format": file_format}
                    ),
                    202,
                )
                done = wait_job(admin, job["id"])
                seconds = time.perf_counter() - started
                rss.phase = "between"
                if done["status"] != "succeeded":
                    raise SystemExit(f"export ended {done['status']}: {done}")
                started = time.perf_counter()
                size = 0
                with admin.stream("GET", f"/api/v1/jobs/{job['id']}/download") as response:
                    assert response.status_code == 200, response.read()
                    for part in response.iter_bytes():
                        size += len(part)
                download = time.perf_counter() - started
                exported = done["rows_ok"]
                exports.append(
                    (
                        f"5. export {file_format}",
                        f"{exported:,} rows in {seconds:.1f} s = {exported / seconds:,.0f} rows/s "
                        f"(target >= 50,000); {size / 2**20:.1f} MiB downloaded "
                        f"in {download:.2f} s",
                    )
                )
        peak = max(v for k, v in rss.peaks.items() if k not in ("start", "between"))
        figures.append(
            (
                "4. bulk worker peak RSS",
                f"{peak / 2**20:.0f} MB (target < 200 MB); by phase: "
                + ", ".join(f"{k} {v / 2**20:.0f} MB" for k, v in rss.peaks.items()),
            )
        )
        figures += exports
        db.close()
    width = max(len(k) for k, _ in figures)
    print(f"\nbulk benchmark (one run, {time.perf_counter() - began:.0f} s in all)")
    for key, value in figures:
        print(f"  {key.ljust(width)}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
