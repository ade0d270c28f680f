"""Reading an import end to end in-process: a job created through the API (workers
off), then ImportWork run on it directly under a lease this test takes; what it
staged, the errors file and the chunks it put in the outbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from bulk_service.clients.results import ResultsClient
from bulk_service.domain.jobs import Job, JobKind
from bulk_service.domain.sheets import ReadLimits
from bulk_service.jobs.imports import ImportWork
from bulk_service.jobs.lease import JobLease, LeaseLost
from bulk_service.jobs.rules import RulesFactory
from bulk_service.jobs.runner import JobRunner
from bulk_service.messaging.answers import AnswerRowError, MarkChunkAnsweredV1
from bulk_service.settings import BulkSettings
from bulk_service.store import jobs as jobs_store
from bulk_service.usecases.answers import take_answer
from bulk_support import (
    Caller,
    ResultsStub,
    csv_bytes,
    execute,
    job_errors,
    outbox_of,
    scalar,
    staged,
    xlsx_bytes,
)
from httpx import AsyncClient
from service_kit.db import Database
from service_kit.service_credentials import ServiceTokens

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
LONG = ("student_number", "subject_code", "mark")


@pytest.fixture
def settings(settings: BulkSettings) -> BulkSettings:
    return settings.model_copy(update={"max_upload_bytes": 4 * 1024 * 1024})


@pytest.fixture
def exam_id(results_stub: ResultsStub) -> uuid.UUID:
    return results_stub.add_exam((("MATH", 100), ("PHYS", 50)))


@pytest.fixture
async def results_client(settings: BulkSettings) -> AsyncIterator[ResultsClient]:
    tokens = ServiceTokens(settings.auth_url, "bulk", "test-secret")
    http = httpx.AsyncClient(timeout=5, auth=tokens.auth("results"))
    try:
        yield ResultsClient(http, settings.results_url)
    finally:
        await http.aclose()
        await tokens.aclose()


def import_work(db: Database, results: ResultsClient, chunk_rows: int = 5000) -> ImportWork:
    return ImportWork(
        db,
        RulesFactory(results, patience_seconds=0).rules_for,
        limits=ReadLimits(max_columns=100, max_cell_chars=1000),
        batch_rows=100,
        chunk_rows={JobKind.MARKS_IMPORT: chunk_rows, JobKind.USERS_IMPORT: 200},
    )


async def upload(
    client: AsyncClient,
    who: Caller,
    exam_id: uuid.UUID,
    data: bytes,
    *,
    content_type: str = "text/csv",
    query: str = "",
) -> uuid.UUID:
    response = await client.post(
        f"/api/v1/exams/{exam_id}/imports{query}",
        content=data,
        headers={**who.headers, "Content-Type": content_type},
    )
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


async def run_import(db: Database, work: ImportWork, job_id: uuid.UUID) -> Job:
    """Claims the job as a worker would, runs its work once, returns the job after."""
    async with db.transaction() as session:
        job = await jobs_store.claim_job(session, job_id, "test-worker", 30)
    assert job is not None
    await work(job, JobLease(db, job_id, "test-worker", 30))
    async with db.transaction() as session:
        after = await jobs_store.get_job(session, job_id)
    assert after is not None
    return after


def entries_of(found: Sequence[Any]) -> list[tuple[int, str, dict[str, Any]]]:
    return [(r["row_no"], r["dedupe_key"], dict(r["payload"])) for r in found]


def mark(row: int, number: str, subject: str, value: str | None, status: str = "present") -> Any:
    return {
        "row": row,
        "student_number": number,
        "subject_code": subject,
        "status": status,
        "mark": value,
    }


async def test_long_file_duplicates_fail_every_row_involved(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
) -> None:
    data = csv_bytes(
        [
            LONG,
            ("S-1", "MATH", "50"),  # 2: duplicate of 4 and 7
            ("S-2", "MATH", "60"),  # 3: fine
            (" S-1 ", "math", "70"),  # 4: the same pair, spelled differently
            ("S-3", "PHYS", "99"),  # 5: over PHYS's 50
            ("S-3", "MATH", "abc"),  # 6: not a number
            ("S-1", "MATH", "AB"),  # 7: duplicate again
            ("S-2", "PHYS", "12,5"),  # 8: fine (decimal comma)
        ]
    )
    job_id = await upload(client, examiner, exam_id, data)
    job = await run_import(db, import_work(db, results_client), job_id)

    assert job.rows_total == 7
    assert job.rows_failed == 5
    assert job.stage.value == "waiting" and job.chunks_total == 1
    entries = [payload for _, _, payload in entries_of(await staged(db, job_id))]
    assert entries == [mark(3, "S-2", "MATH", "60"), mark(8, "S-2", "PHYS", "12.5")]
    errors = await job_errors(db, job_id)
    assert [(e["row_no"], e["code"]) for e in errors] == [
        (2, "DUPLICATE_ENTRY"),
        (4, "DUPLICATE_ENTRY"),
        (5, "MARK_OUT_OF_RANGE"),
        (6, "NOT_A_NUMBER"),
        (7, "DUPLICATE_ENTRY"),
    ]
    for e in errors:
        if e["code"] == "DUPLICATE_ENTRY":
            assert e["message"].endswith("rows 2, 4, 7"), e["message"]
            assert e["value"] == "S-1"
    chunks = await outbox_of(db, "marks.import_chunk", job_id)
    assert len(chunks) == 1
    assert chunks[0]["rows"] == entries
    assert chunks[0]["exam_id"] == str(exam_id)
    assert chunks[0]["requested_by"] == {"user_id": str(examiner.user_id), "role": "examiner"}


async def test_wide_file_counts_filled_cells(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
) -> None:
    data = csv_bytes(
        [
            ("student_number", "MATH", "PHYS"),
            ("S-1", "50", "20"),  # 2: two entries
            ("S-2", "", "30"),  # 3: one
            ("S-3", "", ""),  # 4: none
            ("S-4", "abc", "ex"),  # 5: a bad cell and an exempt one
            ("S-5", "101", "AB"),  # 6: over MATH's 100, and absent
        ]
    )
    job_id = await upload(client, examiner, exam_id, data)
    job = await run_import(db, import_work(db, results_client), job_id)
    assert job.rows_total == 7  # 2 + 1 + 0 + 2 + 2 filled mark cells
    assert job.rows_failed == 2
    entries = [payload for _, _, payload in entries_of(await staged(db, job_id))]
    assert entries == [
        mark(2, "S-1", "MATH", "50"),
        mark(2, "S-1", "PHYS", "20"),
        mark(3, "S-2", "PHYS", "30"),
        mark(5, "S-4", "PHYS", None, "exempt"),
        mark(6, "S-5", "PHYS", None, "absent"),
    ]
    errors = await job_errors(db, job_id)
    assert [(e["row_no"], e["column_name"], e["code"]) for e in errors] == [
        (5, "MATH", "NOT_A_NUMBER"),
        (6, "MATH", "MARK_OUT_OF_RANGE"),
    ]


async def test_wide_duplicate_student_fails_each_cell_of_both_rows(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
) -> None:
    data = csv_bytes(
        [
            ("student_number", "MATH", "PHYS"),
            ("S-1", "50", "20"),
            ("S-2", "1", ""),
            ("S-1", "", "21"),
        ]
    )
    job_id = await upload(client, examiner, exam_id, data)
    job = await run_import(db, import_work(db, results_client), job_id)
    assert job.rows_total == 4
    assert job.rows_failed == 2  # PHYS of rows 2 and 4; MATH of row 2 is alone
    errors = await job_errors(db, job_id)
    assert [(e["row_no"], e["column_name"], e["code"]) for e in errors] == [
        (2, "PHYS", "DUPLICATE_ENTRY"),
        (4, "PHYS", "DUPLICATE_ENTRY"),
    ]
    assert all(e["message"].endswith("rows 2, 4") for e in errors)
    rows_left = [payload["row"] for _, _, payload in entries_of(await staged(db, job_id))]
    assert rows_left == [2, 3]


async def test_xlsx_upload_gives_the_same_entries_as_the_csv(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
) -> None:
    lines: list[tuple[object, ...]] = [LONG]
    for n in range(6000):
        number = f"S-{uuid.UUID(int=n * 7919 + 1).hex[-10:]}"
        # Numbers in the workbook are number cells: ints, halves, two decimals.
        value: object = (n * 37) % 50
        if n % 3 == 1:
            value = value + 0.5  # type: ignore[operator]
        elif n % 3 == 2:
            value = value + 0.25  # type: ignore[operator]
        lines.append((number, "MATH" if n % 2 else "PHYS", value))
    lines.append(("S-bad", "MATH", "abc"))
    lines.append((lines[1][0], lines[1][1], "1"))  # a duplicate of row 2
    as_csv = csv_bytes(lines)
    as_xlsx = xlsx_bytes(lines)
    assert len(as_xlsx) > 64 * 1024  # read across several stored parts

    work = import_work(db, results_client, chunk_rows=5000)
    csv_job = await run_import(db, work, await upload(client, examiner, exam_id, as_csv))
    xlsx_id = await upload(client, examiner, exam_id, as_xlsx, content_type=XLSX_TYPE)
    parts = await scalar(db, "SELECT count(*) FROM bulk.job_files WHERE job_id = :j", j=xlsx_id)
    assert parts >= 2
    xlsx_job = await run_import(db, work, xlsx_id)

    assert xlsx_job.error_code is None, xlsx_job.error_message
    assert (xlsx_job.rows_total, xlsx_job.rows_failed, xlsx_job.chunks_total) == (
        csv_job.rows_total,
        csv_job.rows_failed,
        csv_job.chunks_total,
    )
    assert csv_job.rows_total == 6002 and csv_job.rows_failed == 3
    csv_entries = entries_of(await staged(db, csv_job.id))
    assert len(csv_entries) == 5999
    assert entries_of(await staged(db, xlsx_id)) == csv_entries
    # Staged in file order across the staging batches: seq and row both increase.
    found = await staged(db, xlsx_id)
    assert [r["row_no"] for r in found] == sorted(r["row_no"] for r in found)
    assert [r["seq"] for r in found] == sorted({r["seq"] for r in found})
    assert [r["row_no"] for r in found][:2] == [3, 4]  # row 2 was a duplicate

    def errors(found: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [(e["row_no"], e["column_name"], e["code"], e["value"]) for e in found]

    assert errors(await job_errors(db, xlsx_id)) == errors(await job_errors(db, csv_job.id))


async def test_header_only_file_fails_no_rows(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
) -> None:
    job_id = await upload(client, examiner, exam_id, csv_bytes([LONG]))
    job = await run_import(db, import_work(db, results_client), job_id)
    assert job.status.value == "failed"
    assert job.error_code == "FILE_NO_ROWS"
    completed = await outbox_of(db, "bulk.job.completed", job_id)
    assert [c["error_code"] for c in completed] == ["FILE_NO_ROWS"]
    assert await outbox_of(db, "marks.import_chunk", job_id) == []


async def test_bad_header_fails_naming_each_column(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
) -> None:
    data = csv_bytes([("student_number", "subject", "mark"), ("S-1", "MATH", "1")])
    job_id = await upload(client, examiner, exam_id, data)
    job = await run_import(db, import_work(db, results_client), job_id)
    assert job.status.value == "failed"
    assert job.error_code == "FILE_HEADER_INVALID"
    errors = await job_errors(db, job_id)
    assert {(e["row_no"], e["column_name"], e["code"]) for e in errors} == {
        (1, "subject_code", "REQUIRED"),
        (1, "subject", "UNKNOWN_COLUMN"),
    }
    assert await staged(db, job_id) == []
    assert await outbox_of(db, "marks.import_chunk", job_id) == []


async def test_wide_header_with_an_unknown_subject_fails(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
) -> None:
    data = csv_bytes([("student_number", "MATH", "CHEM"), ("S-1", "1", "2")])
    job_id = await upload(client, examiner, exam_id, data)
    job = await run_import(db, import_work(db, results_client), job_id)
    assert job.error_code == "FILE_HEADER_INVALID"
    errors = await job_errors(db, job_id)
    assert [(e["column_name"], e["code"]) for e in errors] == [("CHEM", "SUBJECT_NOT_FOUND")]


async def test_all_or_nothing_with_a_local_error_sends_nothing(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
) -> None:
    data = csv_bytes([LONG, ("S-1", "MATH", "50"), ("S-2", "MATH", "x"), ("S-3", "PHYS", "1")])
    job_id = await upload(client, examiner, exam_id, data, query="?mode=all_or_nothing")
    job = await run_import(db, import_work(db, results_client), job_id)
    assert job.status.value == "failed"
    assert job.error_code == "ROWS_INVALID"
    assert (job.rows_total, job.rows_failed, job.rows_ok) == (3, 1, 0)
    assert await outbox_of(db, "marks.import_chunk", job_id) == []
    assert await staged(db, job_id) == []
    assert [e["row_no"] for e in await job_errors(db, job_id)] == [3]
    completed = await outbox_of(db, "bulk.job.completed", job_id)
    assert [c["error_code"] for c in completed] == ["ROWS_INVALID"]


async def test_all_or_nothing_clean_file_is_checked_first(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
) -> None:
    data = csv_bytes([LONG, ("S-1", "MATH", "50"), ("S-2", "MATH", "5"), ("S-3", "PHYS", "1")])
    job_id = await upload(client, examiner, exam_id, data, query="?mode=all_or_nothing")
    job = await run_import(db, import_work(db, results_client, chunk_rows=2), job_id)
    assert job.stage.value == "awaiting_check"
    chunks = await outbox_of(db, "marks.import_chunk", job_id)
    assert [(c["chunk_no"], c["dry_run"], c["mode"]) for c in chunks] == [
        (0, True, "all_or_nothing"),
        (1, True, "all_or_nothing"),
    ]


async def test_chunks_go_out_in_file_order(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
) -> None:
    data = csv_bytes([LONG, *((f"S-{n}", "MATH", str(n)) for n in range(5))])
    job_id = await upload(client, examiner, exam_id, data, query="?dry_run=true")
    job = await run_import(db, import_work(db, results_client, chunk_rows=2), job_id)
    assert job.stage.value == "waiting"
    assert (job.chunks_total, job.chunks_sent) == (3, 3)
    chunks = await outbox_of(db, "marks.import_chunk", job_id)
    assert [c["chunk_no"] for c in chunks] == [0, 1, 2]
    assert all(c["dry_run"] is True for c in chunks)
    assert [[r["row"] for r in c["rows"]] for c in chunks] == [[2, 3], [4, 5], [6]]
    lease = await scalar(db, "SELECT lease_owner FROM bulk.jobs WHERE id = :j", j=job_id)
    assert lease is None  # nothing left for a worker: the answers move the job on


async def test_an_exam_gone_before_reading_fails_the_job(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_stub: ResultsStub,
    results_client: ResultsClient,
) -> None:
    job_id = await upload(client, examiner, exam_id, csv_bytes([LONG, ("S-1", "MATH", "1")]))
    with results_stub.lock:
        del results_stub.exams[exam_id]
    job = await run_import(db, import_work(db, results_client), job_id)
    assert (job.status.value, job.error_code) == ("failed", "EXAM_NOT_FOUND")


async def test_results_down_while_reading_fails_results_unavailable(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_stub: ResultsStub,
    results_client: ResultsClient,
) -> None:
    job_id = await upload(client, examiner, exam_id, csv_bytes([LONG, ("S-1", "MATH", "1")]))
    results_stub.failing = True
    job = await run_import(db, import_work(db, results_client), job_id)
    assert (job.status.value, job.error_code) == ("failed", "RESULTS_UNAVAILABLE")


async def test_the_runner_runs_an_import_and_releases_its_lease(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
) -> None:
    job_id = await upload(client, examiner, exam_id, csv_bytes([LONG, ("S-1", "MATH", "1")]))
    work = import_work(db, results_client)
    runner = JobRunner(
        db,
        {JobKind.MARKS_IMPORT: work},
        owner="runner-1",
        lease_seconds=30,
        capacity=1,
        sweep_seconds=60,
    )
    try:
        assert await runner.take(job_id)
        for _ in range(100):
            stage = await scalar(db, "SELECT stage FROM bulk.jobs WHERE id = :j", j=job_id)
            if stage == "waiting":
                break
            await asyncio.sleep(0.05)
        assert stage == "waiting"
    finally:
        await runner.stop()
    assert len(await outbox_of(db, "marks.import_chunk", job_id)) == 1
    lease = await scalar(db, "SELECT lease_owner FROM bulk.jobs WHERE id = :j", j=job_id)
    assert lease is None


# -- the cycle with answers, cancelling, takeover --------------------------------------


async def take(db: Database, reply: MarkChunkAnsweredV1) -> None:
    async with db.transaction() as session:
        await take_answer(session, reply)


def answer(
    job_id: uuid.UUID, chunk_no: int, dry_run: bool, ok: int, failed: int = 0
) -> MarkChunkAnsweredV1:
    errors = [AnswerRowError(row=2, column="student_number", code="STUDENT_NOT_FOUND")] * failed
    return MarkChunkAnsweredV1(
        job_id=job_id,
        chunk_no=chunk_no,
        dry_run=dry_run,
        applied=not dry_run,
        rows_ok=ok,
        rows_unchanged=0,
        rows_failed=failed,
        errors=errors,
    )


async def test_all_or_nothing_checks_then_applies_with_chunks_numbered_after(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
) -> None:
    data = csv_bytes([LONG, ("S-1", "MATH", "50"), ("S-2", "MATH", "5"), ("S-3", "PHYS", "1")])
    job_id = await upload(client, examiner, exam_id, data, query="?mode=all_or_nothing")
    work = import_work(db, results_client, chunk_rows=2)
    job = await run_import(db, work, job_id)
    assert job.stage.value == "awaiting_check"
    await take(db, answer(job_id, 0, True, ok=2))
    await take(db, answer(job_id, 1, True, ok=1))
    async with db.transaction() as session:
        checked = await jobs_store.get_job(session, job_id)
    assert checked is not None
    assert checked.stage.value == "applying" and checked.rows_ok == 0
    assert len(await outbox_of(db, "bulk.job.requested", job_id)) == 2  # the upload's, and now

    job = await run_import(db, work, job_id)
    assert job.stage.value == "waiting"
    chunks = await outbox_of(db, "marks.import_chunk", job_id)
    assert [(c["chunk_no"], c["dry_run"]) for c in chunks] == [
        (0, True),
        (1, True),
        (2, False),
        (3, False),
    ]
    assert [[r["row"] for r in c["rows"]] for c in chunks[2:]] == [[2, 3], [4]]
    await take(db, answer(job_id, 2, False, ok=2))
    await take(db, answer(job_id, 3, False, ok=1))
    async with db.transaction() as session:
        done = await jobs_store.get_job(session, job_id)
    assert done is not None
    assert (done.status.value, done.rows_ok, done.rows_failed) == ("succeeded", 3, 0)
    assert await staged(db, job_id) == []


async def test_all_or_nothing_failing_its_check_applies_nothing(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
) -> None:
    data = csv_bytes([LONG, ("S-1", "MATH", "50"), ("S-2", "MATH", "5"), ("S-3", "PHYS", "1")])
    job_id = await upload(client, examiner, exam_id, data, query="?mode=all_or_nothing")
    await run_import(db, import_work(db, results_client, chunk_rows=2), job_id)
    await take(db, answer(job_id, 1, True, ok=1))
    await take(db, answer(job_id, 0, True, ok=1, failed=1))
    async with db.transaction() as session:
        done = await jobs_store.get_job(session, job_id)
    assert done is not None
    assert (done.status.value, done.error_code, done.rows_ok) == ("failed", "ROWS_INVALID", 0)
    chunks = await outbox_of(db, "marks.import_chunk", job_id)
    assert all(c["dry_run"] for c in chunks) and len(chunks) == 2
    assert [e["code"] for e in await job_errors(db, job_id)] == ["STUDENT_NOT_FOUND"]


async def test_a_job_cancelled_while_reading_sends_nothing(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
) -> None:
    job_id = await upload(client, examiner, exam_id, csv_bytes([LONG, ("S-1", "MATH", "1")]))
    async with db.transaction() as session:
        job = await jobs_store.claim_job(session, job_id, "test-worker", 30)
    assert job is not None
    cancel = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=examiner.headers)
    assert cancel.status_code == 202 and cancel.json()["status"] == "running"
    await import_work(db, results_client)(job, JobLease(db, job_id, "test-worker", 30))
    async with db.transaction() as session:
        done = await jobs_store.get_job(session, job_id)
    assert done is not None
    assert done.status.value == "cancelled"
    assert await outbox_of(db, "marks.import_chunk", job_id) == []
    assert [c["status"] for c in await outbox_of(db, "bulk.job.completed", job_id)] == ["cancelled"]


async def test_a_reader_that_lost_its_lease_leaves_nothing(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
) -> None:
    job_id = await upload(client, examiner, exam_id, csv_bytes([LONG, ("S-1", "MATH", "x")]))
    async with db.transaction() as session:
        job = await jobs_store.claim_job(session, job_id, "old-worker", 30)
    assert job is not None
    await execute(db, "UPDATE bulk.jobs SET lease_owner = 'new-worker' WHERE id = :j", j=job_id)
    with pytest.raises(LeaseLost):
        await import_work(db, results_client)(job, JobLease(db, job_id, "old-worker", 30))
    assert await staged(db, job_id) == []
    assert await job_errors(db, job_id) == []
    async with db.transaction() as session:
        after = await jobs_store.get_job(session, job_id)
    assert after is not None
    assert (after.stage.value, after.rows_total) == ("reading", None)


async def test_users_file_duplicates_by_email_and_no_password_in_errors(
    client: AsyncClient,
    db: Database,
    admin: Caller,
    results_client: ResultsClient,
) -> None:
    secret = "correct horse battery"
    data = csv_bytes(
        [
            ("email", "full_name", "role", "student_number", "password"),
            ("ann@x.edu", "Ann", "student", "S-1", secret),
            ("bob@x.edu", "Bob", "wizard", "", secret + "1"),
            ("ANN@x.edu", "Ann Again", "student", "S-2", secret + "2"),
            ("cy@x.edu", "Cy", "examiner", "", "short"),
            ("di@x.edu", "Di", "examiner", "", ""),
        ]
    )
    response = await client.post(
        "/api/v1/users/imports", content=data, headers={**admin.headers, "Content-Type": "text/csv"}
    )
    assert response.status_code == 202, response.text
    job_id = uuid.UUID(response.json()["id"])
    job = await run_import(db, import_work(db, results_client), job_id)
    assert (job.rows_total, job.rows_failed) == (5, 4)
    errors = await job_errors(db, job_id)
    assert sorted((e["row_no"], e["code"]) for e in errors) == [
        (2, "DUPLICATE_ENTRY"),
        (3, "INVALID_ROLE"),
        (4, "DUPLICATE_ENTRY"),
        (5, "PASSWORD_TOO_SHORT"),
    ]
    for e in errors:
        assert secret not in e["value"] and secret not in e["message"]
        assert e["value"] != "short"
    assert [dict(p)["email"] for _, _, p in entries_of(await staged(db, job_id))] == ["di@x.edu"]
    chunks = await outbox_of(db, "users.import_chunk", job_id)
    assert len(chunks) == 1 and chunks[0]["rows"][0]["password"] is None


class LeaseLostAfter(JobLease):
    """A lease that finds itself lost after ``checks`` checks (a worker that paused)."""

    def __init__(self, db: Database, job_id: uuid.UUID, owner: str, checks: int) -> None:
        super().__init__(db, job_id, owner, 30)
        self._left = checks

    def check(self) -> None:
        if self._left <= 0:
            raise LeaseLost("lost")
        self._left -= 1


async def test_a_takeover_while_sending_resumes_after_the_last_chunk_sent(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
) -> None:
    data = csv_bytes([LONG, *((f"S-{n}", "MATH", str(n)) for n in range(5))])
    job_id = await upload(client, examiner, exam_id, data)
    work = import_work(db, results_client, chunk_rows=2)
    async with db.transaction() as session:
        job = await jobs_store.claim_job(session, job_id, "first", 30)
    assert job is not None
    read = await work._read(job, JobLease(db, job_id, "first", 30))  # reading, as __call__ does
    assert read is not None and read.stage.value == "applying"
    with pytest.raises(LeaseLost):
        await work._send(read, LeaseLostAfter(db, job_id, "first", checks=1))  # one chunk out
    assert [c["chunk_no"] for c in await outbox_of(db, "marks.import_chunk", job_id)] == [0]
    # Its answer comes while the job is still being sent.
    await take(db, answer(job_id, 0, False, ok=2))
    await execute(db, "UPDATE bulk.jobs SET lease_until = now() - interval '1 second'")

    async with db.transaction() as session:
        job = await jobs_store.claim_job(session, job_id, "second", 30)
    assert job is not None and job.stage.value == "applying"
    await work(job, JobLease(db, job_id, "second", 30))
    chunks = await outbox_of(db, "marks.import_chunk", job_id)
    assert [c["chunk_no"] for c in chunks] == [0, 1, 2]
    assert [[r["row"] for r in c["rows"]] for c in chunks] == [[2, 3], [4, 5], [6]]
    async with db.transaction() as session:
        waiting = await jobs_store.get_job(session, job_id)
    assert waiting is not None and waiting.stage.value == "waiting"
    await take(db, answer(job_id, 2, False, ok=1))
    await take(db, answer(job_id, 1, False, ok=1, failed=1))
    async with db.transaction() as session:
        done = await jobs_store.get_job(session, job_id)
    assert done is not None
    assert (done.status.value, done.rows_ok, done.rows_failed) == ("completed_with_errors", 4, 1)
    assert done.progress == 1


async def test_csv_read_across_stored_parts_splitting_characters_and_lines(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
    settings: BulkSettings,
) -> None:
    part = settings.upload_part_bytes
    head = "\ufeffstudent_number,subject_code,mark\r\n".encode()
    filler_rows = []
    size = len(head)
    n = 0
    while True:
        line = f"S-{n:05d},MATH,{n % 100}\r\n".encode()
        if size + len(line) > part - 3:
            break
        filler_rows.append(line)
        size += len(line)
        n += 1
    # Pad so that the next row's "é" (2 bytes) straddles the first part's end.
    pad = part - 1 - size - len(b'"')
    quoted = b'"' + b"S" * pad + "é".encode() + b'",MATH,7\r\n'
    data = head + b"".join(filler_rows) + quoted + "Z-ü,PHYS,8\r\n".encode()
    assert data[part - 1 : part + 1] == "é".encode()
    job_id = await upload(client, examiner, exam_id, data)
    assert await scalar(db, "SELECT count(*) FROM bulk.job_files WHERE job_id = :j", j=job_id) == 2
    job = await run_import(db, import_work(db, results_client), job_id)
    assert job.error_code is None, job.error_message
    assert await job_errors(db, job_id) == []
    entries = [p for _, _, p in entries_of(await staged(db, job_id))]
    assert len(entries) == len(filler_rows) + 2
    assert entries[-2]["student_number"] == "S" * pad + "é"
    assert entries[-1]["student_number"] == "Z-ü"
    assert entries[0]["student_number"] == "S-00000"


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
async def test_blank_rows_are_not_rows(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_client: ResultsClient,
    fmt: str,
) -> None:
    blank: tuple[object, ...] = ("", "", "") if fmt == "csv" else (None, None, None)
    only_blanks = [LONG, blank, blank]
    with_blanks = [LONG, blank, ("S-1", "MATH", "5"), blank, ("S-2", "MATH", "6"), blank]
    encode = csv_bytes if fmt == "csv" else xlsx_bytes
    kind = "text/csv" if fmt == "csv" else XLSX_TYPE
    work = import_work(db, results_client)

    empty_id = await upload(client, examiner, exam_id, encode(only_blanks), content_type=kind)
    empty = await run_import(db, work, empty_id)
    assert (empty.status.value, empty.error_code) == ("failed", "FILE_NO_ROWS")

    job_id = await upload(client, examiner, exam_id, encode(with_blanks), content_type=kind)
    job = await run_import(db, work, job_id)
    assert job.error_code is None
    assert (job.rows_total, job.rows_failed) == (2, 0)
    assert [p["row"] for _, _, p in entries_of(await staged(db, job_id))] == [3, 5]
