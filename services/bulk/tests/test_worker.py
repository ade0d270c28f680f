"""The worker's rules against the database (ADR 0014): claims, leases and fencing,
chunk answers taken once, how the last answer ends a job, resending, retention."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest
from bulk_service.domain.jobs import Job, JobKind
from bulk_service.domain.sheets import ReadLimits
from bulk_service.jobs.housekeeping import purge_old_job_data, resend_overdue_chunks
from bulk_service.jobs.imports import ImportWork
from bulk_service.jobs.lease import JobLease, LeaseLost
from bulk_service.jobs.runner import JobRunner
from bulk_service.messaging.answers import AnswerRowError, MarkChunkAnsweredV1
from bulk_service.store import jobs as jobs_store
from bulk_service.store import staging
from bulk_service.store.staging import StagedEntry
from bulk_service.usecases.answers import take_answer
from bulk_support import count_parts, execute, job_errors, outbox_of, rows, scalar, staged
from service_kit.db import Database

CREATOR = uuid.uuid4()


async def new_job(db: Database, **values: Any) -> Job:
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "kind": "marks_import",
        "status": "queued",
        "stage": "reading",
        "exam_id": uuid.uuid4(),
        "dry_run": False,
        "mode": "partial",
        "format": "csv",
        "created_by": CREATOR,
        "created_by_role": "examiner",
    }
    row.update(values)
    async with db.transaction() as session:
        job = await jobs_store.insert_job(session, row)
    assert job is not None
    return job


def entry(row_no: int, number: str, subject: str = "MATH", mark: str = "50") -> StagedEntry:
    return StagedEntry(
        row_no=row_no,
        dedupe_key=f"{number}\x1f{subject}",
        column_name="subject_code",
        shown_value=number,
        payload={
            "row": row_no,
            "student_number": number,
            "subject_code": subject,
            "status": "present",
            "mark": mark,
        },
    )


async def waiting_job(db: Database, chunks: int, per_chunk: int = 2, **values: Any) -> Job:
    """A job whose chunks all went out (stage waiting), with its staged entries."""
    job = await new_job(
        db,
        status="running",
        stage="waiting",
        rows_total=chunks * per_chunk,
        chunks_total=chunks,
        chunks_sent=chunks,
        **values,
    )
    entries = [entry(i + 2, f"S-{i}") for i in range(chunks * per_chunk)]
    async with db.transaction() as session:
        await staging.copy_entries(session, job.id, 0, entries)
        for c in range(chunks):
            await staging.record_chunk(
                session,
                job.id,
                chunk_no=c,
                dry_run=False,
                first_seq=c * per_chunk,
                last_seq=c * per_chunk + per_chunk - 1,
                entries=per_chunk,
            )
    return job


def answer(
    job: Job,
    chunk_no: int,
    *,
    ok: int = 0,
    unchanged: int = 0,
    failed: int = 0,
    dry_run: bool = False,
    errors: list[AnswerRowError] | None = None,
) -> MarkChunkAnsweredV1:
    return MarkChunkAnsweredV1(
        job_id=job.id,
        chunk_no=chunk_no,
        dry_run=dry_run,
        applied=not dry_run,
        rows_ok=ok,
        rows_unchanged=unchanged,
        rows_failed=failed,
        errors=errors or [],
    )


async def take(db: Database, reply: MarkChunkAnsweredV1) -> Job | None:
    async with db.transaction() as session:
        return await take_answer(session, reply)


async def read_job(db: Database, job_id: uuid.UUID) -> Job:
    async with db.transaction() as session:
        job = await jobs_store.get_job(session, job_id)
    assert job is not None
    return job


# -- claims and leases -------------------------------------------------------------


class Parked:
    """A job's work that waits until released (the job stays claimed meanwhile)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started: list[uuid.UUID] = []

    async def __call__(self, job: Job, lease: JobLease) -> None:
        self.started.append(job.id)
        await self.release.wait()


def runner(db: Database, owner: str, work: Parked, lease_seconds: float = 30) -> JobRunner:
    return JobRunner(
        db,
        {kind: work for kind in JobKind},
        owner=owner,
        lease_seconds=lease_seconds,
        capacity=32,
        sweep_seconds=60,
    )


async def test_two_runners_racing_for_a_job_claim_it_once(db: Database) -> None:
    work = Parked()
    a, b = runner(db, "worker-a", work), runner(db, "worker-b", work)
    jobs = [await new_job(db) for _ in range(15)]
    try:
        for job in jobs:
            won = await asyncio.gather(a.take(job.id), b.take(job.id))
            assert sum(won) == 1, won
        await asyncio.sleep(0.05)
        assert sorted(work.started) == sorted(j.id for j in jobs)
        claimed = await rows(db, "SELECT lease_owner, status, attempts FROM bulk.jobs")
        assert all(r["status"] == "running" and r["attempts"] == 1 for r in claimed)
        assert {r["lease_owner"] for r in claimed} <= {"worker-a", "worker-b"}
    finally:
        work.release.set()
        await a.stop()
        await b.stop()
    # Work done, leases released: nobody holds the jobs any more.
    await asyncio.sleep(0.05)
    assert await scalar(db, "SELECT count(*) FROM bulk.jobs WHERE lease_owner IS NOT NULL") == 0


# Before: take() checked `_running` before awaiting the claim, and the claim lets the
# lease's own owner claim again, so the job's command and the sweep at once ran the
# job twice in one worker under one lease.
async def test_one_runner_taking_a_job_twice_at_once_runs_it_once(db: Database) -> None:
    work = Parked()
    a = runner(db, "worker-a", work)
    job = await new_job(db)
    try:
        won = await asyncio.gather(a.take(job.id), a.take(job.id))
        await asyncio.sleep(0.05)
        assert sum(won) == 1, won
        assert work.started == [job.id]
        assert await scalar(db, "SELECT attempts FROM bulk.jobs") == 1
    finally:
        work.release.set()
        await a.stop()


async def test_concurrent_claims_in_the_store_succeed_once(db: Database) -> None:
    job = await new_job(db)

    async def claim(owner: str) -> Job | None:
        async with db.transaction() as session:
            return await jobs_store.claim_job(session, job.id, owner, 30)

    won = await asyncio.gather(*(claim(f"w{i}") for i in range(8)))
    assert len([w for w in won if w is not None]) == 1


async def test_a_live_lease_of_another_blocks_the_claim_until_it_passes(db: Database) -> None:
    job = await new_job(db)
    async with db.transaction() as session:
        assert await jobs_store.claim_job(session, job.id, "first", 0.6) is not None
    async with db.transaction() as session:
        assert await jobs_store.claim_job(session, job.id, "second", 30) is None
    await asyncio.sleep(0.7)
    async with db.transaction() as session:
        taken = await jobs_store.claim_job(session, job.id, "second", 30)
    assert taken is not None
    assert taken.attempts == 2


async def test_no_claim_of_finished_jobs_or_jobs_awaiting_answers(db: Database) -> None:
    finished = await new_job(db, status="succeeded", stage="done")
    waiting = await new_job(db, status="running", stage="waiting")
    checking = await new_job(db, status="running", stage="awaiting_check")
    async with db.transaction() as session:
        for job in (finished, waiting, checking):
            assert await jobs_store.claim_job(session, job.id, "w", 30) is None


async def test_writes_are_fenced_once_the_lease_changed_hands(db: Database) -> None:
    job = await new_job(db)
    async with db.transaction() as session:
        assert await jobs_store.claim_job(session, job.id, "old", 30) is not None
        assert await jobs_store.update_leased(session, job.id, "old", rows_total=1) is not None
    # The old worker paused past its lease; another took the job.
    await execute(db, "UPDATE bulk.jobs SET lease_until = now() - interval '1 second'")
    async with db.transaction() as session:
        assert await jobs_store.claim_job(session, job.id, "new", 30) is not None
    async with db.transaction() as session:
        assert await jobs_store.update_leased(session, job.id, "old", rows_total=99) is None
        assert not await jobs_store.set_progress(session, job.id, "old", Decimal(1))
        assert not await jobs_store.renew_lease(session, job.id, "old", 30)
        assert not await jobs_store.holds_lease(session, job.id, "old")
        assert await jobs_store.holds_lease(session, job.id, "new")
    current = await read_job(db, job.id)
    assert current.rows_total == 1
    async with db.transaction() as session:
        assert await jobs_store.update_leased(session, job.id, "new", rows_total=5) is not None


async def test_an_expired_lease_fences_even_its_own_owner(db: Database) -> None:
    job = await new_job(db)
    async with db.transaction() as session:
        assert await jobs_store.claim_job(session, job.id, "w", 30) is not None
    await execute(db, "UPDATE bulk.jobs SET lease_until = now() - interval '1 second'")
    async with db.transaction() as session:
        assert await jobs_store.update_leased(session, job.id, "w", rows_total=3) is None


async def test_the_lease_heartbeat_notices_a_takeover(db: Database) -> None:
    job = await new_job(db)
    async with db.transaction() as session:
        assert await jobs_store.claim_job(session, job.id, "old", 0.3) is not None
    lease = JobLease(db, job.id, "old", 0.3)
    lease.start()
    try:
        await asyncio.sleep(0.25)  # renewed at least once
        assert not lease.lost
        await execute(
            db,
            "UPDATE bulk.jobs SET lease_owner = 'new', lease_until = now() + interval '1 minute'",
        )
        for _ in range(30):
            if lease.lost:
                break
            await asyncio.sleep(0.05)
        assert lease.lost
        with pytest.raises(LeaseLost):
            lease.check()
    finally:
        await lease.stop()
    assert (await read_job(db, job.id)).status.value == "running"
    owner = await scalar(db, "SELECT lease_owner FROM bulk.jobs")
    assert owner == "new"


# -- answers -----------------------------------------------------------------------


async def test_an_answer_taken_twice_counts_once(db: Database) -> None:
    job = await waiting_job(db, chunks=2)
    errors = [AnswerRowError(row=3, column="student_number", code="STUDENT_NOT_FOUND", value="S-1")]
    first = await take(db, answer(job, 0, ok=1, failed=1, errors=errors))
    again = await take(db, answer(job, 0, ok=1, failed=1, errors=errors))
    assert first is not None and again is not None
    current = await read_job(db, job.id)
    assert (current.chunks_answered, current.rows_ok, current.rows_failed) == (1, 1, 1)
    assert current.status.value == "running"
    assert len(await job_errors(db, job.id)) == 1
    # A dry-run answer for a chunk that went out for real is not this chunk's answer.
    await take(db, answer(job, 1, ok=2, dry_run=True))
    assert (await read_job(db, job.id)).chunks_answered == 1


async def test_the_last_answer_ends_the_job(db: Database) -> None:
    job = await waiting_job(db, chunks=2)
    await take(db, answer(job, 1, ok=1, unchanged=1))
    assert (await read_job(db, job.id)).status.value == "running"
    assert len(await staged(db, job.id)) == 4
    assert await outbox_of(db, "bulk.job.completed", job.id) == []
    errors = [AnswerRowError(row=2, column="student_number", code="STUDENT_NOT_FOUND")]
    ended = await take(db, answer(job, 0, ok=1, failed=1, errors=errors))
    assert ended is not None
    current = await read_job(db, job.id)
    assert current.status.value == "completed_with_errors"
    assert current.stage.value == "done"
    assert (current.rows_ok, current.rows_unchanged, current.rows_failed) == (2, 1, 1)
    assert current.finished_at is not None and current.progress == 1
    assert await staged(db, job.id) == []
    completed = await outbox_of(db, "bulk.job.completed", job.id)
    assert len(completed) == 1
    assert completed[0]["status"] == "completed_with_errors"
    assert (completed[0]["rows_ok"], completed[0]["rows_failed"]) == (2, 1)
    # A late answer again changes nothing.
    await take(db, answer(job, 0, ok=2))
    assert (await read_job(db, job.id)).rows_ok == 2
    assert len(await outbox_of(db, "bulk.job.completed", job.id)) == 1


async def test_all_answers_clean_is_succeeded(db: Database) -> None:
    job = await waiting_job(db, chunks=1)
    await take(db, answer(job, 0, ok=2))
    assert (await read_job(db, job.id)).status.value == "succeeded"


async def test_a_chunk_refused_as_a_whole_fails_the_job_with_its_code(db: Database) -> None:
    job = await waiting_job(db, chunks=2)
    refused = [AnswerRowError(row=0, code="FORBIDDEN", message="You may not write this subject.")]
    await take(db, answer(job, 0, failed=2, errors=refused))
    await take(db, answer(job, 1, failed=2, errors=[AnswerRowError(row=0, code="EXAM_PUBLISHED")]))
    current = await read_job(db, job.id)
    assert current.status.value == "failed"
    assert current.error_code == "FORBIDDEN"
    assert current.error_message == "You may not write this subject."
    completed = await outbox_of(db, "bulk.job.completed", job.id)
    assert [c["error_code"] for c in completed] == ["FORBIDDEN"]
    # The whole-chunk refusal is the job's error, not a row of the errors file.
    assert await job_errors(db, job.id) == []


async def test_a_refused_chunk_stops_a_sending_job(db: Database) -> None:
    """The worker sends no more chunks once a chunk was refused as a whole."""
    job = await waiting_job(db, chunks=1)
    await execute(
        db,
        "UPDATE bulk.jobs SET stage = 'applying', chunks_total = 3, chunks_sent = 1 WHERE id = :j",
        j=job.id,
    )
    await take(db, answer(job, 0, failed=2, errors=[AnswerRowError(row=0, code="FORBIDDEN")]))
    current = await read_job(db, job.id)
    assert current.error_code == "FORBIDDEN" and current.status.value == "running"


# -- housekeeping ------------------------------------------------------------------


async def finished_job_with_data(db: Database, days_ago: float) -> Job:
    job = await new_job(db, status="completed_with_errors", stage="done")
    await execute(
        db,
        "UPDATE bulk.jobs SET finished_at = now() - make_interval(secs => :s) WHERE id = :j",
        j=job.id,
        s=days_ago * 86400,
    )
    await execute(
        db,
        "INSERT INTO bulk.job_files (job_id, role, part_no, data) VALUES "
        "(:j, 'upload', 0, 'a'), (:j, 'upload', 1, 'b')",
        j=job.id,
    )
    await execute(
        db,
        "INSERT INTO bulk.job_errors (job_id, row_no, column_name, code, message) "
        "VALUES (:j, 2, 'mark', 'NOT_A_NUMBER', 'x')",
        j=job.id,
    )
    return job


async def test_retention_removes_old_files_and_errors_only(db: Database) -> None:
    old = await finished_job_with_data(db, days_ago=31)
    recent = await finished_job_with_data(db, days_ago=29)
    running = await new_job(db, status="running", stage="applying")
    await execute(
        db,
        "INSERT INTO bulk.job_files (job_id, role, part_no, data) VALUES (:j, 'upload', 0, 'c')",
        j=running.id,
    )
    assert await purge_old_job_data(db, 30) == 1
    assert await count_parts(db, old.id) == 0
    assert await job_errors(db, old.id) == []
    assert await count_parts(db, recent.id) == 2
    assert len(await job_errors(db, recent.id)) == 1
    assert await count_parts(db, running.id) == 1
    assert (await read_job(db, old.id)).files_purged
    assert not (await read_job(db, recent.id)).files_purged
    # The job row stays, with its counts; a second run finds nothing more.
    assert (await read_job(db, old.id)).status.value == "completed_with_errors"
    assert await purge_old_job_data(db, 30) == 0


async def test_an_overdue_chunk_is_sent_again_with_the_same_rows(db: Database) -> None:
    job = await waiting_job(db, chunks=3)
    await execute(
        db,
        "UPDATE bulk.job_chunks SET sent_at = now() - interval '1 hour' "
        "WHERE job_id = :j AND chunk_no IN (1, 2)",
        j=job.id,
    )
    await take(db, answer(job, 2, ok=2))  # answered: not resent
    assert await resend_overdue_chunks(db, 300) == 1
    commands = await outbox_of(db, "marks.import_chunk", job.id)
    assert len(commands) == 1
    command = commands[0]
    assert command["chunk_no"] == 1 and command["dry_run"] is False
    assert command["exam_id"] == str(job.exam_id)
    assert [r["row"] for r in command["rows"]] == [4, 5]
    assert [r["student_number"] for r in command["rows"]] == ["S-2", "S-3"]
    assert command["rows"][0] == {
        "row": 4,
        "student_number": "S-2",
        "subject_code": "MATH",
        "status": "present",
        "mark": "50",
    }
    # sent_at was touched: not overdue any more.
    assert await resend_overdue_chunks(db, 300) == 0


async def test_no_resend_for_a_finished_job(db: Database) -> None:
    job = await waiting_job(db, chunks=1)
    await execute(db, "UPDATE bulk.job_chunks SET sent_at = now() - interval '1 hour'")
    await execute(db, "UPDATE bulk.jobs SET status = 'cancelled', stage = 'done'")
    assert await resend_overdue_chunks(db, 300) == 0
    assert await outbox_of(db, "marks.import_chunk", job.id) == []


# -- the runner, the sweep, progress ------------------------------------------------


async def test_the_sweep_takes_orphaned_jobs_only(db: Database) -> None:
    orphan = await new_job(db, status="running", stage="applying")
    expired = await new_job(db, status="running", stage="reading")
    held = await new_job(db, status="running", stage="reading")
    fresh = await new_job(db)  # its command's to take
    awaiting = await new_job(db, status="running", stage="waiting")
    done = await new_job(db, status="succeeded", stage="done")
    await execute(
        db,
        "UPDATE bulk.jobs SET created_at = now() - interval '1 minute' WHERE id <> :fresh",
        fresh=fresh.id,
    )
    await execute(
        db,
        "UPDATE bulk.jobs SET lease_owner = 'dead', lease_until = now() - interval '1 second' "
        "WHERE id = :j",
        j=expired.id,
    )
    await execute(
        db,
        "UPDATE bulk.jobs SET lease_owner = 'alive', lease_until = now() + interval '1 minute' "
        "WHERE id = :j",
        j=held.id,
    )
    work = Parked()
    sweeper = runner(db, "sweeper", work)
    try:
        await sweeper.sweep()
        await asyncio.sleep(0.05)
        assert sorted(work.started) == sorted([orphan.id, expired.id])
    finally:
        work.release.set()
        await sweeper.stop()
    assert {awaiting.id, done.id, fresh.id, held.id}.isdisjoint(work.started)


async def test_stopping_the_runner_releases_its_leases(db: Database) -> None:
    work = Parked()
    a = runner(db, "stopping", work)
    job = await new_job(db)
    assert await a.take(job.id)
    await asyncio.sleep(0.05)
    assert await scalar(db, "SELECT lease_owner FROM bulk.jobs") == "stopping"
    await a.stop()
    found = await rows(db, "SELECT lease_owner, lease_until, status FROM bulk.jobs")
    assert dict(found[0]) == {"lease_owner": None, "lease_until": None, "status": "running"}
    assert not await a.take(job.id)  # a stopping runner takes nothing more


async def test_a_runner_with_full_slots_takes_nothing(db: Database) -> None:
    work = Parked()
    small = JobRunner(
        db,
        {k: work for k in JobKind},
        owner="small",
        lease_seconds=30,
        capacity=1,
        sweep_seconds=60,
    )
    first, second = await new_job(db), await new_job(db)
    try:
        assert await small.take(first.id)
        assert not await small.take(second.id)
        assert (await read_job(db, second.id)).status.value == "queued"
    finally:
        work.release.set()
        await small.stop()


async def test_progress_follows_the_answers(db: Database) -> None:
    job = await waiting_job(db, chunks=4)
    await take(db, answer(job, 0, ok=2))
    assert (await read_job(db, job.id)).progress == Decimal("0.4")
    await take(db, answer(job, 1, ok=2))
    assert (await read_job(db, job.id)).progress == Decimal("0.6")


async def test_an_import_failing_too_often_fails_for_good(db: Database) -> None:
    async def no_rules(job: Job, header: Any) -> Any:
        raise AssertionError("not read")

    work = ImportWork(
        db,
        no_rules,
        limits=ReadLimits(max_columns=10, max_cell_chars=100),
        batch_rows=100,
        chunk_rows={JobKind.MARKS_IMPORT: 10},
    )
    job = await new_job(db, attempts=5)
    async with db.transaction() as session:
        claimed = await jobs_store.claim_job(session, job.id, "w", 30)
    assert claimed is not None and claimed.attempts == 6
    await work(claimed, JobLease(db, job.id, "w", 30))
    done = await read_job(db, job.id)
    assert (done.status.value, done.error_code) == ("failed", "INTERNAL")
    assert [c["error_code"] for c in await outbox_of(db, "bulk.job.completed", job.id)] == [
        "INTERNAL"
    ]
