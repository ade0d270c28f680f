"""Exports in-process: a job created through the API, ExportWork run on it under a lease
this test takes, results' NDJSON from the stub, the file read back through the API."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from bulk_service.clients.results import ResultsClient, ResultsUnavailable
from bulk_service.domain.jobs import Job
from bulk_service.jobs.exports import ExportWork
from bulk_service.jobs.lease import JobLease, LeaseLost
from bulk_service.settings import BulkSettings
from bulk_service.store import jobs as jobs_store
from bulk_support import Caller, ResultsStub, execute, outbox_of, scalar
from httpx import AsyncClient
from service_kit.db import Database
from service_kit.service_credentials import ServiceTokens


@pytest.fixture
async def results_client(settings: BulkSettings) -> AsyncIterator[ResultsClient]:
    tokens = ServiceTokens(settings.auth_url, "bulk", "test-secret")
    http = httpx.AsyncClient(timeout=5, auth=tokens.auth("results"))
    try:
        yield ResultsClient(http, settings.results_url)
    finally:
        await http.aclose()
        await tokens.aclose()


def result(number: str, name: str, math: Any, phys_status: str = "present") -> dict[str, Any]:
    return {
        "student_number": number,
        "student_name": name,
        "status": "complete",
        "total": "70.50",
        "max_total": "150.00",
        "percentage": "47.00",
        "grade": "C",
        "gpa": "2.00",
        "passed": True,
        "rank": 1,
        "subjects": [
            {"code": "MATH", "status": "present", "mark": math},
            {"code": "PHYS", "status": phys_status, "mark": "0.00"},
        ],
    }


async def export_job(client: AsyncClient, who: Caller, exam_id: uuid.UUID, fmt: str) -> uuid.UUID:
    response = await client.post(
        f"/api/v1/exams/{exam_id}/exports?format={fmt}", headers=who.headers
    )
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


async def claim(db: Database, job_id: uuid.UUID) -> Job:
    async with db.transaction() as session:
        job = await jobs_store.claim_job(session, job_id, "test-worker", 30)
    assert job is not None
    return job


async def read_job(db: Database, job_id: uuid.UUID) -> Job:
    async with db.transaction() as session:
        job = await jobs_store.get_job(session, job_id)
    assert job is not None
    return job


async def test_csv_export_is_stored_and_downloaded(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    results_stub: ResultsStub,
    results_client: ResultsClient,
    settings: BulkSettings,
) -> None:
    exam_id = results_stub.add_exam()
    results_stub.results[exam_id] = [
        result("S-1", "=cmd|' /C calc'!A0", "70.50", "absent"),
        result("S-2", "Ann, Lee", 12),
    ]
    job_id = await export_job(client, examiner, exam_id, "csv")
    work = ExportWork(db, results_client, part_bytes=settings.upload_part_bytes, patience_seconds=0)
    job = await claim(db, job_id)
    await work(job, JobLease(db, job_id, "test-worker", 30))

    done = await read_job(db, job_id)
    assert done.status.value == "succeeded"
    assert (done.rows_total, done.rows_ok) == (2, 2)
    completed = await outbox_of(db, "bulk.job.completed", job_id)
    assert [c["status"] for c in completed] == ["succeeded"]

    response = await client.get(f"/api/v1/jobs/{job_id}/download", headers=examiner.headers)
    assert response.status_code == 200, response.text
    assert int(response.headers["content-length"]) == len(response.content) == done.file_bytes
    assert done.file_name and done.file_name.endswith(".csv")
    lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert lines[0][:2] == ["student_number", "student_name"]
    assert lines[0][-2:] == ["MATH", "PHYS"]
    assert lines[1][0] == "S-1"
    assert lines[1][1] == "'=cmd|' /C calc'!A0"
    assert lines[1][-2:] == ["70.50", "AB"]
    assert lines[2][1] == "Ann, Lee"
    assert lines[2][-2:] == ["12.00", "0.00"]


async def test_xlsx_export_is_a_workbook(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    results_stub: ResultsStub,
    results_client: ResultsClient,
    settings: BulkSettings,
) -> None:
    from openpyxl import load_workbook

    exam_id = results_stub.add_exam()
    results_stub.results[exam_id] = [result(f"S-{n}", f"Student {n}", n) for n in range(50)]
    job_id = await export_job(client, examiner, exam_id, "xlsx")
    work = ExportWork(db, results_client, part_bytes=settings.upload_part_bytes, patience_seconds=0)
    await work(await claim(db, job_id), JobLease(db, job_id, "test-worker", 30))
    response = await client.get(f"/api/v1/jobs/{job_id}/download", headers=examiner.headers)
    assert response.status_code == 200
    book = load_workbook(io.BytesIO(response.content), read_only=True)
    sheet_rows = list(book.worksheets[0].iter_rows(values_only=True))
    assert len(sheet_rows) == 51
    assert sheet_rows[1][0] == "S-0"


async def test_export_of_an_exam_gone_fails_exam_not_found(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    results_stub: ResultsStub,
    results_client: ResultsClient,
    settings: BulkSettings,
) -> None:
    exam_id = results_stub.add_exam()
    job_id = await export_job(client, examiner, exam_id, "csv")
    with results_stub.lock:
        del results_stub.exams[exam_id]
    work = ExportWork(db, results_client, part_bytes=settings.upload_part_bytes, patience_seconds=0)
    await work(await claim(db, job_id), JobLease(db, job_id, "test-worker", 30))
    done = await read_job(db, job_id)
    assert (done.status.value, done.error_code) == ("failed", "EXAM_NOT_FOUND")
    assert await scalar(db, "SELECT count(*) FROM bulk.job_files WHERE job_id = :j", j=job_id) == 0


async def test_a_bad_results_line_fails_the_export_in_the_end(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    results_stub: ResultsStub,
    results_client: ResultsClient,
    settings: BulkSettings,
) -> None:
    exam_id = results_stub.add_exam()
    broken = result("S-1", "A", "10")
    broken["total"] = True
    results_stub.results[exam_id] = [broken]
    job_id = await export_job(client, examiner, exam_id, "csv")
    work = ExportWork(db, results_client, part_bytes=settings.upload_part_bytes, patience_seconds=0)
    for _ in range(8):  # the runner's retries: claim, run, fail unexpectedly, release
        async with db.transaction() as session:
            job = await jobs_store.claim_job(session, job_id, "test-worker", 30)
        if job is None:
            break
        try:
            await work(job, JobLease(db, job_id, "test-worker", 30))
        except Exception:  # what JobRunner._run logs before releasing the lease
            async with db.transaction() as session:
                await jobs_store.release_lease(session, job_id, "test-worker")
    done = await read_job(db, job_id)
    assert (done.status.value, done.error_code) == ("failed", "RESULTS_INVALID")
    assert done.attempts == 1  # failed on the first run, not after the retries
    assert await scalar(db, "SELECT count(*) FROM bulk.job_files WHERE job_id = :j", j=job_id) == 0
    assert await outbox_of(db, "bulk.job.completed", job_id) != []


async def test_an_export_that_keeps_failing_unexpectedly_fails_in_the_end(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    results_stub: ResultsStub,
    results_client: ResultsClient,
    settings: BulkSettings,
) -> None:
    exam_id = results_stub.add_exam()
    job_id = await export_job(client, examiner, exam_id, "csv")
    await execute(db, "UPDATE bulk.jobs SET attempts = 5 WHERE id = :j", j=job_id)
    work = ExportWork(db, results_client, part_bytes=settings.upload_part_bytes, patience_seconds=0)
    await work(await claim(db, job_id), JobLease(db, job_id, "test-worker", 30))
    done = await read_job(db, job_id)
    assert (done.status.value, done.error_code) == ("failed", "INTERNAL")
    assert await scalar(db, "SELECT count(*) FROM bulk.job_files WHERE job_id = :j", j=job_id) == 0


async def test_an_export_that_lost_its_lease_writes_no_file(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    results_stub: ResultsStub,
    results_client: ResultsClient,
    settings: BulkSettings,
) -> None:

    exam_id = results_stub.add_exam()
    results_stub.results[exam_id] = [result(f"S-{n}", "N", n) for n in range(10)]
    job_id = await export_job(client, examiner, exam_id, "csv")
    job = await claim(db, job_id)
    await execute(db, "UPDATE bulk.jobs SET lease_owner = 'someone-else' WHERE id = :j", j=job_id)
    work = ExportWork(db, results_client, part_bytes=settings.upload_part_bytes, patience_seconds=0)
    with pytest.raises(LeaseLost):
        await work(job, JobLease(db, job_id, "test-worker", 30))
    assert await scalar(db, "SELECT count(*) FROM bulk.job_files WHERE job_id = :j", j=job_id) == 0
    after = await read_job(db, job_id)
    assert (after.status.value, after.rows_total, after.file_bytes) == ("running", None, None)
    assert await outbox_of(db, "bulk.job.completed", job_id) == []


async def test_an_export_retried_too_often_with_results_down_fails(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    results_stub: ResultsStub,
    results_client: ResultsClient,
    settings: BulkSettings,
) -> None:

    exam_id = results_stub.add_exam()
    job_id = await export_job(client, examiner, exam_id, "csv")
    results_stub.failing = True
    work = ExportWork(db, results_client, part_bytes=settings.upload_part_bytes, patience_seconds=0)
    with pytest.raises(ResultsUnavailable):  # an early attempt: the runner retries it
        await work(await claim(db, job_id), JobLease(db, job_id, "test-worker", 30))
    await execute(
        db, "UPDATE bulk.jobs SET attempts = 4, lease_until = NULL WHERE id = :j", j=job_id
    )
    await work(await claim(db, job_id), JobLease(db, job_id, "test-worker", 30))
    done = await read_job(db, job_id)
    assert (done.status.value, done.error_code) == ("failed", "RESULTS_UNAVAILABLE")


async def test_a_rerun_export_replaces_the_file_of_an_earlier_run(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    results_stub: ResultsStub,
    results_client: ResultsClient,
    settings: BulkSettings,
) -> None:
    """Export parts already stored for the job are replaced, never mixed into the new file."""

    exam_id = results_stub.add_exam()
    results_stub.results[exam_id] = [result("S-1", "N", 1)]
    job_id = await export_job(client, examiner, exam_id, "csv")
    for no in range(3):
        await execute(
            db,
            "INSERT INTO bulk.job_files (job_id, role, part_no, data) "
            "VALUES (:j, 'export', :n, 'stale')",
            j=job_id,
            n=no,
        )
    work = ExportWork(db, results_client, part_bytes=settings.upload_part_bytes, patience_seconds=0)
    await work(await claim(db, job_id), JobLease(db, job_id, "test-worker", 30))
    response = await client.get(f"/api/v1/jobs/{job_id}/download", headers=examiner.headers)
    assert response.status_code == 200
    assert b"stale" not in response.content
    assert response.content.decode("utf-8-sig").startswith("student_number,")
