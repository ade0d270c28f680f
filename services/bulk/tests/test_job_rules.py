"""The job rules of domain.jobs: who sees a job, cancelling, how a job ends, progress."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from bulk_service.domain.jobs import (
    READING_SHARE,
    CancelRefused,
    FileFormat,
    ImportMode,
    Job,
    JobKind,
    JobStatus,
    Stage,
    applying_progress,
    cancellation,
    final_status,
    reading_progress,
)

OWNER = uuid.uuid4()


def a_job(**changes: object) -> Job:
    job = Job(
        id=uuid.uuid4(),
        kind=JobKind.MARKS_IMPORT,
        status=JobStatus.RUNNING,
        stage=Stage.APPLYING,
        exam_id=uuid.uuid4(),
        dry_run=False,
        mode=ImportMode.PARTIAL,
        format=FileFormat.CSV,
        file_name="marks.csv",
        file_bytes=100,
        created_by=OWNER,
        created_by_role="examiner",
        created_at=datetime(2026, 12, 5, tzinfo=UTC),
        started_at=None,
        finished_at=None,
        progress=Decimal(0),
        rows_total=None,
        rows_ok=0,
        rows_unchanged=0,
        rows_failed=0,
        error_code=None,
        error_message=None,
        cancel_requested=False,
        chunks_total=None,
        chunks_sent=0,
        chunks_answered=0,
        attempts=1,
        files_purged=False,
    )
    return replace(job, **changes)  # type: ignore[arg-type]


def test_only_the_creator_and_admins_see_a_job() -> None:
    job = a_job()
    assert job.visible_to(OWNER, "examiner")
    assert job.visible_to(uuid.uuid4(), "admin")
    assert not job.visible_to(uuid.uuid4(), "examiner")
    assert not job.visible_to(uuid.uuid4(), "student")


def test_a_queued_job_is_cancelled_at_once_and_a_running_one_at_its_next_chunk() -> None:
    assert cancellation(a_job(status=JobStatus.QUEUED, stage=Stage.READING)) is JobStatus.CANCELLED
    assert cancellation(a_job(status=JobStatus.RUNNING, stage=Stage.APPLYING)) is None
    assert cancellation(a_job(status=JobStatus.RUNNING, stage=Stage.READING)) is None


@pytest.mark.parametrize(
    "status",
    [JobStatus.SUCCEEDED, JobStatus.COMPLETED_WITH_ERRORS, JobStatus.FAILED, JobStatus.CANCELLED],
)
def test_a_finished_job_cannot_be_cancelled(status: JobStatus) -> None:
    with pytest.raises(CancelRefused):
        cancellation(a_job(status=status, stage=Stage.DONE))


def test_all_or_nothing_refuses_cancel_once_rows_are_applied() -> None:
    aon = {"mode": ImportMode.ALL_OR_NOTHING}
    # Checking (dry runs) and before the first real chunk: still cancellable.
    assert cancellation(a_job(stage=Stage.CHECKING, chunks_sent=3, **aon)) is None
    assert cancellation(a_job(stage=Stage.AWAITING_CHECK, chunks_sent=3, **aon)) is None
    assert cancellation(a_job(stage=Stage.APPLYING, chunks_sent=0, **aon)) is None
    with pytest.raises(CancelRefused):
        cancellation(a_job(stage=Stage.APPLYING, chunks_sent=1, **aon))
    with pytest.raises(CancelRefused):
        cancellation(a_job(stage=Stage.WAITING, chunks_sent=1, **aon))
    # A dry run applies nothing, so it can always be stopped.
    assert cancellation(a_job(stage=Stage.WAITING, dry_run=True, **aon)) is None


def test_how_a_job_ends() -> None:
    assert final_status(a_job()) is JobStatus.SUCCEEDED
    assert final_status(a_job(rows_failed=2)) is JobStatus.COMPLETED_WITH_ERRORS
    assert final_status(a_job(cancel_requested=True, rows_failed=2)) is JobStatus.CANCELLED
    assert final_status(a_job(error_code="FILE_ENCODING", cancel_requested=True)) is (
        JobStatus.FAILED
    )


def test_progress_runs_from_zero_to_one() -> None:
    assert reading_progress(0, 100) == 0
    assert reading_progress(50, 100) == READING_SHARE / 2
    assert reading_progress(500, 100) == READING_SHARE  # never past its share
    assert reading_progress(10, 0) == 0
    assert applying_progress(0, 10) == READING_SHARE
    assert applying_progress(10, 10) == 1
    assert applying_progress(5, 0) == 1
