"""SQL for invitation tokens (an invited user sets their first password with one)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.store.tables import invitations

_USABLE = (invitations.c.used_at.is_(None), invitations.c.expires_at > func.now())


async def add_invitation(
    session: AsyncSession, user_id: uuid.UUID, token_hash: bytes, ttl_seconds: int
) -> datetime:
    expires_at: datetime | None = await session.scalar(
        insert(invitations)
        .values(
            token_hash=token_hash,
            user_id=user_id,
            expires_at=func.now() + timedelta(seconds=ttl_seconds),
        )
        .returning(invitations.c.expires_at)
    )
    assert expires_at is not None
    return expires_at


async def is_usable(session: AsyncSession, token_hash: bytes) -> bool:
    found = await session.scalar(
        select(invitations.c.user_id).where(invitations.c.token_hash == token_hash, *_USABLE)
    )
    return found is not None


async def take_invitation(session: AsyncSession, token_hash: bytes) -> uuid.UUID | None:
    """Marks the token used and returns its user, if it was usable; single use.

    One UPDATE ... RETURNING: a concurrent second use waits for the row lock,
    re-checks ``used_at`` and finds nothing.
    """
    user_id: uuid.UUID | None = await session.scalar(
        update(invitations)
        .where(invitations.c.token_hash == token_hash, *_USABLE)
        .values(used_at=func.now())
        .returning(invitations.c.user_id)
    )
    return user_id


async def drop_open_invitations(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Forgets a user's unused invitations (they must not reactivate a deactivated user)."""
    await session.execute(
        delete(invitations).where(invitations.c.user_id == user_id, invitations.c.used_at.is_(None))
    )


async def purge_expired_invitations(session: AsyncSession, older_than: timedelta) -> int:
    result = await session.execute(
        delete(invitations)
        .where(invitations.c.expires_at < func.now() - older_than)
        .returning(invitations.c.token_hash)
    )
    return len(result.all())
