"""Periodic work of bulk's workers besides taking jobs over (see ``runner.sweep``).

- Resending chunks that were never answered: the outbox delivered them (it
  marks a row sent only after the broker confirmed it), but a queue can be
  purged or a message dead-lettered by an addressee that was broken at the
  time; a resend after ``CHUNK_ANSWER_TIMEOUT_SECONDS`` makes sure no job
  waits forever. The addressee applies a chunk once per (job, chunk), so a
  resend never applies a row twice.
- Retention: files, staged entries and errors of jobs finished more than
  ``BULK_RETENTION_DAYS`` ago are deleted (the job row stays, so its counts
  remain visible), and old inbox ids are purged.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from service_kit.db import Database
from service_kit.jobs import PeriodicJob
from service_kit.messaging.inbox import purge_inbox
from service_kit.messaging.outbox import add_event
from sqlalchemy import delete, func, select, text, update

from bulk_service.jobs.commands import chunk_command
from bulk_service.jobs.metrics import CHUNKS_SENT
from bulk_service.settings import SCHEMA, BulkSettings
from bulk_service.store import jobs as jobs_store
from bulk_service.store import staging
from bulk_service.store.tables import job_errors, job_files, jobs

log = logging.getLogger(__name__)

RESEND_BATCH = 50
PURGE_BATCH = 200


async def resend_overdue_chunks(db: Database, timeout_seconds: float) -> int:
    async with db.read_session(fresh=True) as session:
        overdue = await staging.overdue_chunks(
            session, older_than_seconds=timeout_seconds, limit=RESEND_BATCH
        )
    resent = 0
    for chunk in overdue:
        async with db.transaction() as session:
            job = await jobs_store.get_job(session, chunk.job_id, lock=True)
            if job is None or job.status.finished:
                continue
            payloads = await staging.entries_between(
                session, chunk.job_id, chunk.first_seq, chunk.last_seq
            )
            await add_event(session, chunk_command(job, chunk.chunk_no, chunk.dry_run, payloads))
            await staging.touch_chunk(session, chunk)
        resent += 1
        CHUNKS_SENT.labels(job.kind.value, "yes").inc()
        log.warning("job %s: chunk %s unanswered, sent again", chunk.job_id, chunk.chunk_no)
    return resent


def resend_job(db: Database, settings: BulkSettings) -> PeriodicJob:
    async def run() -> None:
        await resend_overdue_chunks(db, settings.chunk_answer_timeout_seconds)

    return PeriodicJob(
        "resend-unanswered-chunks",
        run,
        interval_seconds=max(settings.chunk_answer_timeout_seconds / 4, 1.0),
        jitter=0.2,
        once_across_replicas=True,
    )


async def purge_old_job_data(db: Database, retention_days: int) -> int:
    """Deletes the files and errors of jobs finished before the retention window."""
    purged = 0
    while True:
        async with db.transaction() as session:
            ids = list(
                (
                    await session.execute(
                        select(jobs.c.id)
                        .where(
                            jobs.c.finished_at.is_not(None),
                            jobs.c.files_purged_at.is_(None),
                            jobs.c.finished_at
                            < func.now() - text(f"interval '{int(retention_days)} days'"),
                        )
                        .order_by(jobs.c.finished_at)
                        .limit(PURGE_BATCH)
                        .with_for_update(skip_locked=True)
                    )
                ).scalars()
            )
            if not ids:
                return purged
            await session.execute(delete(job_files).where(job_files.c.job_id.in_(ids)))
            await session.execute(delete(job_errors).where(job_errors.c.job_id.in_(ids)))
            await session.execute(
                update(jobs).where(jobs.c.id.in_(ids)).values(files_purged_at=func.now())
            )
        purged += len(ids)


def retention_job(db: Database, settings: BulkSettings) -> PeriodicJob:
    async def run() -> None:
        purged = await purge_old_job_data(db, settings.bulk_retention_days)
        async with db.transaction() as session:
            await purge_inbox(
                session,
                schema=SCHEMA,
                older_than=timedelta(days=settings.idempotency_retention_days),
            )
        if purged:
            log.info("retention: removed the files of %d jobs", purged)

    return PeriodicJob(
        "purge-old-job-files",
        run,
        interval_seconds=settings.retention_interval_seconds,
        jitter=0.2,
        first_run_after=5.0,
        once_across_replicas=True,
    )
