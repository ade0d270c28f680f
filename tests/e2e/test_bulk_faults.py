"""bulk under faults: workers SIGKILLed mid-import and mid-export, two workers racing,
the notifier not running (issue 9, item 9).

bulk's workers run as processes of their own here (``BulkWorkers``) with
3-second leases, so a killed worker's job is taken over within seconds.
The checks read results' own tables: every mark applied exactly once.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import signal
import time
import uuid
from collections.abc import Iterator

import aio_pika
import asyncpg
import pytest
from bulk_support import admin_client, create_exam, ok, upload, wait_for_job, wait_fresh
from conftest import E2E

pytestmark = pytest.mark.e2e

STUDENTS = 2000
SUBJECTS = [("MATH", 100), ("PHYS", 100), ("CHEM", 100), ("BIOL", 100)]


def _db_url(e2e: E2E) -> str:
    return e2e.env["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")


def _query(e2e: E2E, sql: str, *args: object) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(_db_url(e2e))
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def cohort(e2e: E2E, admin_tokens: dict[str, str]) -> list[str]:
    """Many students, imported the way an admin would (a users import)."""
    tag = uuid.uuid4().hex[:6]
    numbers = [f"K{tag}-{i:05d}" for i in range(STUDENTS)]
    lines = ["email,full_name,role,student_number"] + [
        f"k{tag}-{i}@example.edu,Student {i},student,{n}" for i, n in enumerate(numbers)
    ]
    with admin_client(e2e, admin_tokens) as admin:
        job = ok(upload(admin, "/api/v1/users/imports", "\n".join(lines).encode()), 202)
        done = wait_for_job(admin, job["id"], timeout=300)
    assert (done["status"], done["rows_ok"]) == ("succeeded", STUDENTS), done
    return numbers


def _long_file(numbers: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["student_number", "subject_code", "mark"])
    for i, number in enumerate(numbers):
        for j, (code, _) in enumerate(SUBJECTS):
            writer.writerow([number, code, f"{(i * 7 + j * 13) % 100}.5"])
    return out.getvalue().encode()


def _holder_pid(e2e: E2E, job_id: str, timeout: float = 60) -> tuple[int, str]:
    """Waits until a worker holds the job mid-work; its pid (from the lease owner) and stage."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = _query(
            e2e,
            "SELECT lease_owner, stage, chunks_sent FROM bulk.jobs WHERE id = $1",
            uuid.UUID(job_id),
        )
        owner, stage, _ = rows[0]
        if owner is not None and stage in ("reading", "applying", "exporting"):
            return int(owner.split(":")[1]), stage
        time.sleep(0.01)
    raise AssertionError("no worker took the job")


def _kill(e2e: E2E, pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    for process in e2e.bulk_workers.processes:
        if process.pid == pid:
            process.wait(10)


def _applied_once(e2e: E2E, job_id: str) -> tuple[int, int]:
    rows = _query(
        e2e,
        "SELECT count(*), count(DISTINCT (student_id, subject_code)) "
        "FROM results.mark_audit WHERE job_id = $1",
        uuid.UUID(job_id),
    )
    return int(rows[0][0]), int(rows[0][1])


def test_a_worker_killed_mid_import_loses_nothing_and_applies_every_mark_once(
    e2e: E2E, admin_tokens: dict[str, str], cohort: list[str]
) -> None:
    e2e.bulk_workers.ensure(2)
    with admin_client(e2e, admin_tokens) as admin:
        exam = create_exam(admin, SUBJECTS)
        job = ok(upload(admin, f"/api/v1/exams/{exam['id']}/imports", _long_file(cohort)), 202)
        pid, stage = _holder_pid(e2e, job["id"])
        _kill(e2e, pid)
        done = wait_for_job(admin, job["id"], timeout=300)
        entries = STUDENTS * len(SUBJECTS)
        assert done["status"] == "succeeded", (stage, done)
        assert (done["rows_total"], done["rows_ok"], done["rows_failed"]) == (entries, entries, 0)
        assert _applied_once(e2e, job["id"]) == (entries, entries)
        wait_fresh(admin, exam["id"], timeout=120)
    e2e.bulk_workers.ensure(1)


def test_a_worker_killed_mid_export_leaves_a_complete_and_correct_file(
    e2e: E2E, admin_tokens: dict[str, str], cohort: list[str]
) -> None:
    e2e.bulk_workers.ensure(2)
    with admin_client(e2e, admin_tokens) as admin:
        exam = create_exam(admin, SUBJECTS)
        imported = ok(upload(admin, f"/api/v1/exams/{exam['id']}/imports", _long_file(cohort)), 202)
        assert wait_for_job(admin, imported["id"], timeout=300)["status"] == "succeeded"
        wait_fresh(admin, exam["id"], timeout=120)
        reference = ok(admin.post(f"/api/v1/exams/{exam['id']}/exports"), 202)
        assert wait_for_job(admin, reference["id"])["status"] == "succeeded"
        expected = admin.get(f"/api/v1/jobs/{reference['id']}/download").content
        job = ok(admin.post(f"/api/v1/exams/{exam['id']}/exports"), 202)
        pid, _ = _holder_pid(e2e, job["id"])
        _kill(e2e, pid)
        done = wait_for_job(admin, job["id"], timeout=120)
        assert done["status"] == "succeeded", done
        assert done["rows_total"] == STUDENTS
        got = admin.get(f"/api/v1/jobs/{job['id']}/download").content
        assert got == expected
        assert len(list(csv.reader(io.StringIO(got.decode("utf-8-sig"))))) == STUDENTS + 1
    e2e.bulk_workers.ensure(1)


def test_two_workers_racing_for_one_job_run_it_once(
    e2e: E2E, admin_tokens: dict[str, str], cohort: list[str]
) -> None:
    e2e.bulk_workers.ensure(3)
    with admin_client(e2e, admin_tokens) as admin:
        exam = create_exam(admin, SUBJECTS)
        job = ok(
            upload(admin, f"/api/v1/exams/{exam['id']}/imports", _long_file(cohort[:500])), 202
        )
        done = wait_for_job(admin, job["id"], timeout=120)
    assert done["status"] == "succeeded"
    assert _applied_once(e2e, job["id"]) == (500 * len(SUBJECTS), 500 * len(SUBJECTS))
    attempts = _query(e2e, "SELECT attempts FROM bulk.jobs WHERE id = $1", uuid.UUID(job["id"]))
    assert attempts[0][0] == 1  # claimed once: the other workers' claims found it held


def test_nothing_about_a_job_is_lost_while_the_notifier_is_not_running(
    e2e: E2E, admin_tokens: dict[str, str], cohort: list[str]
) -> None:
    """A durable queue bound as the notifier's is (the notifier is not running) keeps
    `bulk.job.completed` until someone reads it."""
    queue_name = f"{e2e.env['QUEUE_PREFIX']}notifier-standin-{uuid.uuid4().hex[:6]}"
    broker_url = e2e.env.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")

    async def declare() -> None:
        connection = await aio_pika.connect(broker_url)
        async with connection:
            channel = await connection.channel()
            exchange = await channel.get_exchange(e2e.env["EVENTS_EXCHANGE"])
            queue = await channel.declare_queue(
                queue_name, durable=True, arguments={"x-expires": 600_000}
            )
            await queue.bind(exchange, routing_key="bulk.job.completed")

    async def bodies() -> list[bytes]:
        connection = await aio_pika.connect(broker_url)
        found = []
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(queue_name)
            while (message := await queue.get(fail=False)) is not None:
                found.append(message.body)
                await message.ack()
        return found

    async def delete() -> None:
        connection = await aio_pika.connect(broker_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(queue_name)

    asyncio.run(declare())
    try:
        with admin_client(e2e, admin_tokens) as admin:
            exam = create_exam(admin, SUBJECTS)
            body = f"student_number,subject_code,mark\n{cohort[0]},MATH,12\n".encode()
            job = ok(upload(admin, f"/api/v1/exams/{exam['id']}/imports", body), 202)
            wait_for_job(admin, job["id"])
        deadline = time.monotonic() + 30
        seen: list[bytes] = []
        while time.monotonic() < deadline:
            seen += asyncio.run(bodies())
            if any(job["id"].encode() in b for b in seen):
                break
            time.sleep(0.2)
        assert any(job["id"].encode() in b for b in seen), "bulk.job.completed was not kept"
    finally:
        asyncio.run(delete())


def test_a_running_import_cancelled_stops_and_its_counts_say_what_was_applied(
    e2e: E2E, admin_tokens: dict[str, str], cohort: list[str]
) -> None:
    with admin_client(e2e, admin_tokens) as admin:
        exam = create_exam(admin, SUBJECTS)
        job = ok(upload(admin, f"/api/v1/exams/{exam['id']}/imports", _long_file(cohort)), 202)
        wait_for_job(admin, job["id"], until={"running"})  # a queued one is cancelled at once
        cancel = admin.post(f"/api/v1/jobs/{job['id']}/cancel")
        assert cancel.status_code == 202, cancel.text
        done = wait_for_job(admin, job["id"], timeout=300)
        assert done["status"] == "cancelled", done
        applied, distinct = _applied_once(e2e, job["id"])
        # Chunks that went out before the cancel are applied and counted, none twice.
        assert applied == distinct == done["rows_ok"]
        assert done["rows_ok"] <= STUDENTS * len(SUBJECTS)
        again = admin.post(f"/api/v1/jobs/{job['id']}/cancel")
        assert again.status_code == 409 and again.json()["error"]["code"] == "CONFLICT"


def test_an_upload_over_the_limit_is_refused_while_it_streams_and_leaves_nothing(
    e2e: E2E, admin_tokens: dict[str, str]
) -> None:
    limit = int(e2e.env.get("MAX_UPLOAD_BYTES", str(50 * 1024 * 1024)))
    line = b"S-0000001,MATH,50\n"

    def body() -> Iterator[bytes]:  # chunked: no Content-Length to refuse it early
        yield b"student_number,subject_code,mark\n"
        block = line * 65536
        sent = 0
        while sent <= limit:
            yield block
            sent += len(block)

    with admin_client(e2e, admin_tokens) as admin:
        exam = create_exam(admin, SUBJECTS)
        before = _query(e2e, "SELECT count(*) FROM bulk.jobs")[0][0]
        response = admin.post(
            f"/api/v1/exams/{exam['id']}/imports",
            content=body(),
            headers={"Content-Type": "text/csv"},
        )
    assert response.status_code == 413, response.text[:200]
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert _query(e2e, "SELECT count(*) FROM bulk.jobs")[0][0] == before
    orphans = _query(
        e2e,
        "SELECT count(*) FROM bulk.job_files f LEFT JOIN bulk.jobs j ON j.id = f.job_id "
        "WHERE j.id IS NULL",
    )
    assert orphans[0][0] == 0
