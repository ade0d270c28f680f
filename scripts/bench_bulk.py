"""Benchmark of bulk imports and exports, end to end through the gateway (issue 9 item 10).

Starts its own suite (``tests/conftest.running_suite``: real processes, its own
database, bulk's API and one bulk worker as separate processes) and measures,
in one run:

* a long marks CSV (default 125,000 students x 8 subjects = 1,000,000 rows):
  seconds from the start of the upload until the job has succeeded AND the
  exam's results are fresh (no generate call: results regenerate by themselves);
* the baseline: a raw ``COPY`` of the same rows into a scratch table shaped
  and indexed like ``results.marks`` (same column types, primary key and
  secondary index), in the same database, in the same run; the ratio
  end-to-end / COPY (target >= 0.25, aim 0.5);
* a wide file of 100,000 students x 8 subjects, end to end;
* the bulk worker's peak RSS (sampled from /proc every 100 ms) during all of it;
* exports of the big exam as CSV and XLSX: rows per second (target >= 50,000).

Students are written straight into results' students read model (a COPY): creating
125,000 users through auth would measure auth's Argon2, not bulk. Usage:
``uv run --frozen python scripts/bench_bulk.py [--students 125000] [--wide-students 100000]``;
a quick smoke run: ``--students 2000 --wide-students 2000``.
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
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from bulk_support import admin_client, create_exam, ok, upload, wait_for_job  # noqa: E402
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, running_suite  # noqa: E402

SUBJECTS = [(f"S{i}", 100) for i in range(1, 9)]


class RssSampler:
    """Peak resident memory of a process, read from /proc every 100 ms."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            except OSError:
                return
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


def long_csv(numbers: list[str]) -> bytes:
    out = io.StringIO()
    out.write("student_number,subject_code,mark\n")
    for i, number in enumerate(numbers):
        for j, (code, _) in enumerate(SUBJECTS):
            out.write(f"{number},{code},{_mark(i, j)}\n")
    return out.getvalue().encode()


def wide_csv(numbers: list[str]) -> bytes:
    out = io.StringIO()
    out.write("student_number," + ",".join(c for c, _ in SUBJECTS) + "\n")
    for i, number in enumerate(numbers):
        out.write(number + "," + ",".join(_mark(i, j) for j in range(len(SUBJECTS))) + "\n")
    return out.getvalue().encode()


async def seed_students(db_url: str, numbers: list[str]) -> None:
    connection = await asyncpg.connect(db_url)
    try:
        await connection.copy_records_to_table(
            "students",
            schema_name="results",
            columns=["user_id", "student_number", "full_name", "active", "source_version"],
            records=[(uuid.uuid4(), n, f"Student {n}", True, 1) for n in numbers],
        )
    finally:
        await connection.close()


async def raw_copy(db_url: str, numbers: list[str], exam_id: str) -> float:
    """COPY the same rows into a table shaped and indexed like results.marks."""
    connection = await asyncpg.connect(db_url)
    try:
        await connection.execute(
            """
            CREATE TABLE bench_marks (
              exam_id uuid NOT NULL, student_id uuid NOT NULL, subject_code text NOT NULL,
              status text NOT NULL, mark numeric(7,2), updated_at timestamptz NOT NULL
              DEFAULT now(), updated_by uuid NOT NULL,
              PRIMARY KEY (exam_id, student_id, subject_code));
            CREATE INDEX ON bench_marks (exam_id, subject_code, student_id);
            """
        )
        ids = {
            r["student_number"]: r["user_id"]
            for r in await connection.fetch("SELECT student_number, user_id FROM results.students")
        }
        exam, who = uuid.UUID(exam_id), uuid.uuid4()
        from decimal import Decimal

        records = [
            (exam, ids[n], code, "present", Decimal(_mark(i, j)), who)
            for i, n in enumerate(numbers)
            for j, (code, _) in enumerate(SUBJECTS)
        ]
        started = time.perf_counter()
        await connection.copy_records_to_table(
            "bench_marks",
            columns=["exam_id", "student_id", "subject_code", "status", "mark", "updated_by"],
            records=records,
        )
        return time.perf_counter() - started
    finally:
        await connection.close()


def wait_fresh(client: httpx.Client, exam_id: str, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while ok(client.get(f"/api/v1/exams/{exam_id}"))["results_stale"]:
        if time.monotonic() > deadline:
            raise SystemExit("results never became fresh")
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=125_000, help="long file: students x 8")
    parser.add_argument("--wide-students", type=int, default=100_000, help="wide file students")
    args = parser.parse_args()
    figures: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp, running_suite(Path(tmp)) as e2e:
        db_url = e2e.env["DATABASE_URL"].replace("+asyncpg", "")
        worker = e2e.bulk_workers.processes[0]
        with httpx.Client(base_url=e2e.gateway, timeout=600) as anonymous:
            tokens = ok(
                anonymous.post(
                    "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
                )
            )
        long_numbers = _numbers("L", args.students)
        wide_numbers = _numbers("W", args.wide_students)
        asyncio.run(seed_students(db_url, long_numbers + wide_numbers))
        with RssSampler(worker.pid) as rss, admin_client(e2e, tokens) as admin:
            admin.timeout = httpx.Timeout(600)
            exam = create_exam(admin, SUBJECTS, name="Bench long")
            body = long_csv(long_numbers)
            rows = args.students * len(SUBJECTS)
            started = time.perf_counter()
            job = ok(upload(admin, f"/api/v1/exams/{exam['id']}/imports", body), 202)
            done = wait_for_job(admin, job["id"], timeout=3600)
            job_done = time.perf_counter() - started
            wait_fresh(admin, exam["id"])
            end_to_end = time.perf_counter() - started
            assert done["status"] == "succeeded" and done["rows_ok"] == rows, done
            copy_seconds = asyncio.run(raw_copy(db_url, long_numbers, exam["id"]))
            figures += [
                ("long CSV", f"{rows:,} rows, {len(body) / 2**20:.1f} MiB"),
                ("  job succeeded after", f"{job_done:.1f} s"),
                (
                    "  end to end (results fresh)",
                    f"{end_to_end:.1f} s = {rows / end_to_end:,.0f} rows/s",
                ),
                (
                    "  raw COPY, same rows and indexes",
                    f"{copy_seconds:.1f} s = {rows / copy_seconds:,.0f} rows/s",
                ),
                (
                    "  ratio end to end / COPY",
                    f"{copy_seconds / end_to_end:.2f}x (target 0.25x, aim 0.5x)",
                ),
            ]
            wide = create_exam(admin, SUBJECTS, name="Bench wide")
            body = wide_csv(wide_numbers)
            entries = args.wide_students * len(SUBJECTS)
            started = time.perf_counter()
            job = ok(upload(admin, f"/api/v1/exams/{wide['id']}/imports", body), 202)
            done = wait_for_job(admin, job["id"], timeout=3600)
            wait_fresh(admin, wide["id"])
            wide_seconds = time.perf_counter() - started
            assert done["status"] == "succeeded" and done["rows_ok"] == entries, done
            figures.append(
                (
                    "wide CSV",
                    f"{args.wide_students:,} x 8 = {entries:,} entries, end to end "
                    f"{wide_seconds:.1f} s = {entries / wide_seconds:,.0f} entries/s",
                )
            )
            for file_format in ("csv", "xlsx"):
                started = time.perf_counter()
                job = ok(
                    admin.post(
                        f"/api/v1/exams/{exam['id']}/exports", params={"format": file_format}
                    ),
                    202,
                )
                done = wait_for_job(admin, job["id"], timeout=3600)
                seconds = time.perf_counter() - started
                assert done["status"] == "succeeded", done
                started = time.perf_counter()
                size = len(admin.get(f"/api/v1/jobs/{job['id']}/download").content)
                download = time.perf_counter() - started
                figures.append(
                    (
                        f"export {file_format}",
                        f"{args.students:,} rows in {seconds:.1f} s = "
                        f"{args.students / seconds:,.0f} rows/s; {size / 2**20:.1f} MiB downloaded "
                        f"in {download:.1f} s",
                    )
                )
        figures.append(("bulk worker peak RSS", f"{rss.peak_kib / 1024:.0f} MB (target < 200 MB)"))
    width = max(len(k) for k, _ in figures)
    print("\nbulk benchmark")
    for key, value in figures:
        print(f"  {key.ljust(width)}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
