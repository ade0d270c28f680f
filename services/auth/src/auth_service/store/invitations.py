"""SQL for single-use password tokens: invitations and password resets.

An invited user sets their first password with an invitation token; a user who
forgot theirs asks for a reset token. Both live in ``auth.invitations`` (told
apart by ``purpose``) and both are taken by the same statement.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.store.tables import invitations

Purpose = Literal["invitation", "password_reset"]

_USABLE = (invitations.c.used_at.is_(None), invitations.c.expires_at > func.now())


async def add_invitation(
    session: AsyncSession,
    user_id: uuid.UUID,
    token_hash: bytes,
    ttl_seconds: int,
    purpose: Purpose = "invitation",
) -> datetime:
    expires_at: datetime | None = await session.scalar(
        insert(invitations)
        .values(
            token_hash=token_hash,
            user_id=user_id,
            expires_at=func.now() + timedelta(seconds=ttl_seconds),
            purpose=purpose,
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


async def was_invited(session: AsyncSession, user_id: uuid.UUID) -> bool:
    """Whether the user holds an invitation not taken and not withdrawn (expired or not).

    What tells an invited user from a deactivated one, both inactive: a
    deactivation drops the user's unused tokens (:func:`drop_open_invitations`).
    An expired invitation counts (asking for a reset is how its user gets a new
    link) until the purge forgets it, 30 days after it expired.
    """
    found = await session.scalar(
        select(invitations.c.token_hash)
        .where(
            invitations.c.user_id == user_id,
            invitations.c.purpose == "invitation",
            invitations.c.used_at.is_(None),
        )
        .limit(1)
    )
    return found is not None


async def void_open_resets(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Forgets the user's unused reset tokens: only the newest request's link works."""
    await session.execute(
        delete(invitations).where(
            invitations.c.user_id == user_id,
            invitations.c.purpose == "password_reset",
            invitations.c.used_at.is_(None),
        )
    )


async def drop_open_invitations(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Forgets a user's unused tokens, of either purpose.

    On deactivation (they must not reactivate a deactivated user) and once one
    is taken (the others must not set the password again).
    """
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
