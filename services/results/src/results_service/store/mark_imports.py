"""Import chunks already applied, keyed by (job, chunk): a chunk is applied once."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.store.tables import processed_chunks


async def processed_chunk_result(
    session: AsyncSession, job_id: uuid.UUID, chunk_no: int
) -> dict[str, Any] | None:
    """The stored answer of an already applied chunk, or None."""
    result: dict[str, Any] | None = await session.scalar(
        select(processed_chunks.c.result).where(
            processed_chunks.c.job_id == job_id, processed_chunks.c.chunk_no == chunk_no
        )
    )
    return result


async def save_processed_chunk(
    session: AsyncSession,
    job_id: uuid.UUID,
    chunk_no: int,
    exam_id: uuid.UUID,
    result: dict[str, Any],
) -> bool:
    """Records the chunk as applied; False when a concurrent twin recorded it first."""
    saved = await session.scalar(
        insert(processed_chunks)
        .values(job_id=job_id, chunk_no=chunk_no, exam_id=exam_id, result=result)
        .on_conflict_do_nothing(index_elements=["job_id", "chunk_no"])
        .returning(processed_chunks.c.job_id)
    )
    return saved is not None
