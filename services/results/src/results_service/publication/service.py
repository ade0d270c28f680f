"""Publishing an exam's results: now, or at a time (the scheduler does the rest).

Everything happens with the exam row locked (``SELECT ... FOR UPDATE``), the
lock that mark writers and the generation fence also take, so "fresh" is
checked against the marks_version no writer can change until we commit, and
the status change and the ``results.published`` events commit together.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service_kit.db import Database
from service_kit.errors import Conflict, ErrorCode, NotFound
from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.publication.events import add_published_events

_LOCK_EXAM = text(
    """
SELECT e.id, e.code, e.name, e.status, e.marks_version, e.results_version, now() AS now
FROM results.exams e WHERE e.id = :exam_id
FOR UPDATE OF e
"""
)

# The due exams, oldest first, one at a time: SKIP LOCKED lets every replica
# poll without two of them ever publishing the same exam (the claim and the
# status change are one transaction).
CLAIM_DUE = text(
    """
SELECT e.id, e.code, e.name, e.status, e.marks_version, e.results_version, now() AS now
FROM results.exams e
WHERE e.status = 'scheduled' AND e.publish_at <= now()
  AND e.id <> ALL(CAST(:skip AS uuid[]))
ORDER BY e.publish_at
LIMIT 1
FOR UPDATE OF e SKIP LOCKED
"""
)


def _fresh(exam: Row[Any]) -> bool:
    results_version = exam.results_version
    return results_version is not None and results_version >= exam.marks_version


@dataclass(frozen=True, slots=True)
class Publication:
    exam_id: uuid.UUID
    status: str
    events: int


async def publish_locked(session: AsyncSession, exam: Row[Any]) -> int:
    """Marks the locked, fresh exam published and writes ``results.published``; returns
    the number of events (one per chunk of recipients)."""
    # Read after the lock, in a statement of its own: a generation that committed
    # while we waited for the lock is the one being published.
    generation = await session.scalar(
        text("SELECT max(generation) FROM results.generation_runs WHERE exam_id = :exam_id"),
        {"exam_id": exam.id},
    )
    published_at = await session.scalar(
        text(
            "UPDATE results.exams SET status = 'published', published_at = now(), "
            "updated_at = now() WHERE id = :exam_id RETURNING published_at"
        ),
        {"exam_id": exam.id},
    )
    assert published_at is not None
    return await add_published_events(
        session,
        exam_id=exam.id,
        exam_code=exam.code,
        exam_name=exam.name,
        published_at=published_at,
        generation=int(generation or 0),
    )


async def publish_exam(db: Database, exam_id: uuid.UUID, *, at: datetime | None) -> Publication:
    """``POST /exams/{id}/publish``: 409 if published already or results are stale;
    ``at`` absent or not after the database's now: published now; else scheduled.
    """
    async with db.transaction() as session:
        exam = (await session.execute(_LOCK_EXAM, {"exam_id": exam_id})).one_or_none()
        if exam is None:
            raise NotFound("No such exam.")
        if exam.status == "published":
            raise Conflict(code=ErrorCode.EXAM_PUBLISHED)
        if not _fresh(exam):
            raise Conflict(
                "Results do not reflect the latest marks; generate them first.",
                code=ErrorCode.RESULTS_STALE,
            )
        # The database's clock decides "in the past", the same clock the
        # scheduler compares publish_at with: no skew between replicas.
        if at is not None and at > exam.now:
            await session.execute(
                text(
                    "UPDATE results.exams SET status = 'scheduled', publish_at = :at, "
                    "updated_at = now() WHERE id = :exam_id"
                ),
                {"exam_id": exam_id, "at": at},
            )
            return Publication(exam_id, "scheduled", 0)
        events = await publish_locked(session, exam)
        return Publication(exam_id, "published", events)


@dataclass(frozen=True, slots=True)
class DueOutcome:
    exam_id: uuid.UUID
    published: bool
    """False: the exam was due but stale; the caller regenerates, then claims again."""
    events: int


async def publish_next_due(db: Database, *, skip: Sequence[uuid.UUID] = ()) -> DueOutcome | None:
    """Claims one due scheduled exam (not in ``skip``) and publishes it if its results
    are fresh. None when nothing is due (or every due exam is claimed elsewhere)."""
    async with db.transaction() as session:
        exam = (await session.execute(CLAIM_DUE, {"skip": list(skip)})).one_or_none()
        if exam is None:
            return None
        if not _fresh(exam):
            return DueOutcome(exam.id, False, 0)
        events = await publish_locked(session, exam)
        return DueOutcome(exam.id, True, events)
