"""Queries of ``bulk.jobs``: creating, reading, listing, claiming and moving jobs.

Every write a worker makes while it runs a job is fenced by its lease
(``lease_owner`` and an unexpired ``lease_until`` in the WHERE clause): a
worker that paused past its lease and lost the job to another can no longer
write anything for it (ADR 0014).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from bulk_service.domain.jobs import FileFormat, ImportMode, Job, JobKind, JobStatus, Stage
from bulk_service.store.tables import jobs

UNFINISHED = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
ANSWERS_AWAITED = (Stage.AWAITING_CHECK.value, Stage.WAITING.value)
"""Stages with nothing for a worker to do: the answers move the job on."""


def job_of(row: RowMapping) -> Job:
    return Job(
        id=row["id"],
        kind=JobKind(row["kind"]),
        status=JobStatus(row["status"]),
        stage=Stage(row["stage"]),
        exam_id=row["exam_id"],
        dry_run=row["dry_run"],
        mode=ImportMode(row["mode"]) if row["mode"] else None,
        format=FileFormat(row["format"]),
        file_name=row["file_name"],
        file_bytes=row["file_bytes"],
        created_by=row["created_by"],
        created_by_role=row["created_by_role"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        progress=row["progress"],
        rows_total=row["rows_total"],
        rows_ok=row["rows_ok"],
        rows_unchanged=row["rows_unchanged"],
        rows_failed=row["rows_failed"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        cancel_requested=row["cancel_requested"],
        chunks_total=row["chunks_total"],
        chunks_sent=row["chunks_sent"],
        chunks_answered=row["chunks_answered"],
        attempts=row["attempts"],
        files_purged=row["files_purged_at"] is not None,
    )


async def insert_job(session: AsyncSession, values: dict[str, Any]) -> Job | None:
    """Inserts a job; None when the user already has a job with this Idempotency-Key.

    The unique index makes a concurrent twin wait for this transaction, then
    find the key taken: two requests with one key make one job.
    """
    statement = (
        insert(jobs)
        .values(**values)
        .on_conflict_do_nothing(
            index_elements=[jobs.c.created_by, jobs.c.idempotency_key],
            index_where=jobs.c.idempotency_key.is_not(None),
        )
        .returning(*jobs.c)
    )
    row = (await session.execute(statement)).mappings().one_or_none()
    return job_of(row) if row is not None else None


async def job_by_key(session: AsyncSession, user_id: uuid.UUID, key: str) -> Job | None:
    row = (
        (
            await session.execute(
                select(jobs).where(jobs.c.created_by == user_id, jobs.c.idempotency_key == key)
            )
        )
        .mappings()
        .one_or_none()
    )
    return job_of(row) if row is not None else None


async def get_job(session: AsyncSession, job_id: uuid.UUID, *, lock: bool = False) -> Job | None:
    statement = select(jobs).where(jobs.c.id == job_id)
    if lock:
        statement = statement.with_for_update()
    row = (await session.execute(statement)).mappings().one_or_none()
    return job_of(row) if row is not None else None


async def list_jobs(
    session: AsyncSession,
    *,
    created_by: uuid.UUID | None,
    kind: JobKind | None,
    status: JobStatus | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[Job]:
    """Newest first; ``created_by`` None lists everyone's (admins)."""
    statement = select(jobs)
    if created_by is not None:
        statement = statement.where(jobs.c.created_by == created_by)
    if kind is not None:
        statement = statement.where(jobs.c.kind == kind.value)
    if status is not None:
        statement = statement.where(jobs.c.status == status.value)
    if after is not None:
        created_at, job_id = after
        statement = statement.where(
            or_(
                jobs.c.created_at < created_at,
                and_(jobs.c.created_at == created_at, jobs.c.id < job_id),
            )
        )
    statement = statement.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit)
    return [job_of(r) for r in (await session.execute(statement)).mappings()]


def _lease_held(owner: str) -> Any:
    return and_(jobs.c.lease_owner == owner, jobs.c.lease_until > func.clock_timestamp())


def _lease_until(seconds: float) -> Any:
    return func.clock_timestamp() + text(f"interval '{float(seconds)} seconds'")


async def claim_job(
    session: AsyncSession, job_id: uuid.UUID, owner: str, lease_seconds: float
) -> Job | None:
    """Takes the job for ``owner`` if it is unfinished, has work for a worker (not just
    answers to wait for) and nobody holds an unexpired lease on it."""
    statement = (
        update(jobs)
        .where(
            jobs.c.id == job_id,
            jobs.c.status.in_(UNFINISHED),
            jobs.c.stage.not_in(ANSWERS_AWAITED),
            or_(
                jobs.c.lease_until.is_(None),
                jobs.c.lease_until <= func.clock_timestamp(),
                jobs.c.lease_owner == owner,
            ),
        )
        .values(
            lease_owner=owner,
            lease_until=_lease_until(lease_seconds),
            status=JobStatus.RUNNING.value,
            started_at=func.coalesce(jobs.c.started_at, func.now()),
            attempts=jobs.c.attempts + 1,
        )
        .returning(*jobs.c)
    )
    row = (await session.execute(statement)).mappings().one_or_none()
    return job_of(row) if row is not None else None


async def renew_lease(
    session: AsyncSession, job_id: uuid.UUID, owner: str, lease_seconds: float
) -> bool:
    result = await session.execute(
        update(jobs)
        .where(jobs.c.id == job_id, _lease_held(owner))
        .values(lease_until=_lease_until(lease_seconds))
        .returning(jobs.c.id)
    )
    return result.first() is not None


async def holds_lease(session: AsyncSession, job_id: uuid.UUID, owner: str) -> bool:
    held = await session.scalar(select(jobs.c.id).where(jobs.c.id == job_id, _lease_held(owner)))
    return held is not None


async def release_lease(session: AsyncSession, job_id: uuid.UUID, owner: str) -> None:
    await session.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


async def update_leased(
    session: AsyncSession, job_id: uuid.UUID, owner: str, **values: Any
) -> Job | None:
    """Updates the job only while ``owner`` holds its lease; None when it does not."""
    row = (
        (
            await session.execute(
                update(jobs)
                .where(jobs.c.id == job_id, _lease_held(owner))
                .values(**values)
                .returning(*jobs.c)
            )
        )
        .mappings()
        .one_or_none()
    )
    return job_of(row) if row is not None else None


async def update_job(session: AsyncSession, job_id: uuid.UUID, **values: Any) -> Job:
    row = (
        (
            await session.execute(
                update(jobs).where(jobs.c.id == job_id).values(**values).returning(*jobs.c)
            )
        )
        .mappings()
        .one()
    )
    return job_of(row)


async def set_progress(
    session: AsyncSession, job_id: uuid.UUID, owner: str, progress: Decimal
) -> bool:
    """Progress while reading; also renews nothing (the lease has its own beat)."""
    result = await session.execute(
        update(jobs)
        .where(jobs.c.id == job_id, _lease_held(owner))
        .values(progress=progress)
        .returning(jobs.c.id)
    )
    return result.first() is not None


async def jobs_needing_a_worker(session: AsyncSession, *, limit: int) -> Sequence[uuid.UUID]:
    """Unfinished jobs with work for a worker and no live lease: their worker died,
    or their command was lost. Oldest first."""
    statement = (
        select(jobs.c.id)
        .where(
            jobs.c.status.in_(UNFINISHED),
            jobs.c.stage.not_in(ANSWERS_AWAITED),
            or_(jobs.c.lease_until.is_(None), jobs.c.lease_until <= func.clock_timestamp()),
            # A job created a moment ago is its command's to take.
            jobs.c.created_at < func.clock_timestamp() - text("interval '2 seconds'"),
        )
        .order_by(jobs.c.created_at)
        .limit(limit)
    )
    return list((await session.execute(statement)).scalars())
