"""Writes chunked recipient events (``results.published`` / ``results.updated``) to the outbox.

The recipients are chunked in SQL (``row_number() / 500``) into a temp table
and read back one chunk at a time, so a 100 000-student exam costs 200 small
outbox rows and never puts all of its students in Python memory at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from service_kit.messaging import add_event
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.contracts.results_events import (
    RECIPIENTS_PER_CHUNK,
    ResultsPublishedV1,
    ResultsUpdatedV1,
)

_DROP_CHUNKS = text("DROP TABLE IF EXISTS pg_temp.evt_chunks")
_COUNT_CHUNKS = text("SELECT count(*) FROM evt_chunks")
_CHUNK = text("SELECT recipients FROM evt_chunks WHERE chunk_no = :n")

# Every candidate of the exam (results.published), ordered by student_number.
_CHUNK_CANDIDATES = text(
    """
CREATE TEMP TABLE evt_chunks ON COMMIT DROP AS
SELECT chunk_no,
       jsonb_agg(
           jsonb_build_object('student_id', student_id, 'student_number', student_number)
           ORDER BY student_number
       ) AS recipients
FROM (
    SELECT student_id, student_number,
           (row_number() OVER (ORDER BY student_number) - 1) / :per_chunk AS chunk_no
    FROM results.results WHERE exam_id = :exam_id
) x
GROUP BY chunk_no
"""
)

# The rows this generation changed (results.updated), listed by the write in
# the temp table gen_changed of the same transaction.
_CHUNK_CHANGED = text(
    """
CREATE TEMP TABLE evt_chunks ON COMMIT DROP AS
SELECT chunk_no,
       jsonb_agg(
           jsonb_build_object(
               'student_id', student_id, 'student_number', student_number, 'change', change
           )
           ORDER BY student_number
       ) AS recipients
FROM (
    SELECT student_id, student_number, change,
           (row_number() OVER (ORDER BY student_number) - 1) / :per_chunk AS chunk_no
    FROM gen_changed
) x
GROUP BY chunk_no
"""
)


async def _emit_chunks(
    session: AsyncSession,
    chunking: TextClause,
    params: Mapping[str, Any],
    *,
    model: type[ResultsPublishedV1] | type[ResultsUpdatedV1],
    fields: Mapping[str, Any],
) -> int:
    await session.execute(_DROP_CHUNKS)
    await session.execute(chunking, {**params, "per_chunk": RECIPIENTS_PER_CHUNK})
    count = int(await session.scalar(_COUNT_CHUNKS) or 0)
    for chunk_no in range(count):
        recipients = await session.scalar(_CHUNK, {"n": chunk_no})
        data = model.model_validate(
            {**fields, "chunk_no": chunk_no, "chunk_count": count, "recipients": recipients}
        )
        await add_event(session, data)
    await session.execute(_DROP_CHUNKS)
    return count


async def add_published_events(
    session: AsyncSession,
    *,
    exam_id: uuid.UUID,
    exam_code: str,
    exam_name: str,
    published_at: datetime,
    generation: int,
) -> int:
    """``results.published`` for every candidate of the exam; returns the number of events."""
    return await _emit_chunks(
        session,
        _CHUNK_CANDIDATES,
        {"exam_id": exam_id},
        model=ResultsPublishedV1,
        fields={
            "exam_id": exam_id,
            "exam_code": exam_code,
            "exam_name": exam_name,
            "published_at": published_at,
            "generation": generation,
        },
    )


async def add_updated_events(
    session: AsyncSession,
    *,
    exam_id: uuid.UUID,
    exam_code: str,
    exam_name: str,
    generation: int,
) -> int:
    """``results.updated`` for exactly the rows in ``gen_changed`` (this transaction)."""
    return await _emit_chunks(
        session,
        _CHUNK_CHANGED,
        {},
        model=ResultsUpdatedV1,
        fields={
            "exam_id": exam_id,
            "exam_code": exam_code,
            "exam_name": exam_name,
            "generation": generation,
        },
    )
