"""bulk's users-import chunks already applied, keyed by (job, chunk): applied once."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.domain.users import User
from auth_service.store.tables import processed_import_chunks, users
from auth_service.store.users import user_of


async def processed_answer(
    session: AsyncSession, job_id: uuid.UUID, chunk_no: int
) -> dict[str, Any] | None:
    result: dict[str, Any] | None = await session.scalar(
        select(processed_import_chunks.c.result).where(
            processed_import_chunks.c.job_id == job_id,
            processed_import_chunks.c.chunk_no == chunk_no,
        )
    )
    return result


async def save_answer(
    session: AsyncSession, job_id: uuid.UUID, chunk_no: int, result: dict[str, Any]
) -> bool:
    """Records the chunk as applied; False when a concurrent twin recorded it first."""
    saved = await session.scalar(
        insert(processed_import_chunks)
        .values(job_id=job_id, chunk_no=chunk_no, result=result)
        .on_conflict_do_nothing(index_elements=["job_id", "chunk_no"])
        .returning(processed_import_chunks.c.job_id)
    )
    return saved is not None


async def users_by_canonical_email(session: AsyncSession, keys: Collection[str]) -> dict[str, User]:
    """The users holding these canonical emails, locked for the chunk's changes."""
    if not keys:
        return {}
    rows = (
        await session.execute(
            select(users)
            .where(users.c.email_canonical.in_(list(keys)))
            .with_for_update(key_share=True)
        )
    ).all()
    return {row.email_canonical: user_of(row) for row in rows}


async def student_number_holders(session: AsyncSession, numbers: Collection[str]) -> dict[str, str]:
    """Student number -> canonical email of the user holding it."""
    if not numbers:
        return {}
    rows = await session.execute(
        select(users.c.student_number, users.c.email_canonical).where(
            users.c.student_number.in_(list(numbers))
        )
    )
    return {number: email for number, email in rows.all()}


async def purge_processed_chunks(session: AsyncSession, older_than: timedelta) -> int:
    result = await session.execute(
        delete(processed_import_chunks).where(
            processed_import_chunks.c.processed_at < func.now() - older_than
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
