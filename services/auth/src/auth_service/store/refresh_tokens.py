"""SQL for refresh-token families and their tokens.

Locking order, everywhere: the user row, then family rows, then token rows.
Every change to a family's tokens happens under that family's row lock, so a
token read after taking the lock is stable, and two refreshes of one token run
one after the other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    Interval,
    LargeBinary,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from auth_service.domain.users import User
from auth_service.store import revocations as revocations_store
from auth_service.store.tables import refresh_families, refresh_tokens, users
from auth_service.store.users import user_of


@dataclass(frozen=True, slots=True)
class TokenOwner:
    family_id: uuid.UUID
    user_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class TokenState:
    family_revoked: bool
    rotated: bool
    # Computed by the database (expires_at > now()), so replicas with skewed
    # clocks agree on whether a token is expired.
    expired: bool


# Sign-in opens its session with one statement, built once: the user row is
# locked FOR SHARE only if it is still active with the password hash that was
# verified, and the family and its first token are inserted from that row, so
# they exist only if it qualified. One statement is atomic by itself and costs
# one round trip (run it on an autocommit connection: no BEGIN, no COMMIT).
# Under READ COMMITTED the FOR SHARE waits for a deactivation or password
# change still running and then re-checks the row version it committed, so a
# change that committed since the verify, or was under way, wins (nothing is
# inserted), and one that locks the user after us finds our family and
# revokes it.
_unchanged_user = (
    select(users)
    .where(
        users.c.id == bindparam("user_id"),
        users.c.active.is_(True),
        users.c.password_hash == bindparam("verified_hash"),
    )
    .with_for_update(read=True)
    .cte("unchanged_user")
    # Evaluated (and locked) once, before the inserts read it; never inlined.
    .prefix_with("MATERIALIZED")
)
_new_family = (
    insert(refresh_families)
    .from_select(
        ["id", "user_id"],
        select(bindparam("family_id", type_=UUID(as_uuid=True)), _unchanged_user.c.id),
    )
    .returning(refresh_families.c.id)
    .cte("new_family")
)
_first_token = (
    insert(refresh_tokens)
    .from_select(
        ["token_hash", "family_id", "expires_at"],
        select(
            bindparam("token_hash", type_=LargeBinary),
            _new_family.c.id,
            func.now() + bindparam("ttl", type_=Interval),
        ),
    )
    .cte("first_token")
)
_OPEN_FAMILY = select(_unchanged_user).add_cte(_first_token)


async def open_family(
    conn: AsyncConnection,
    *,
    user_id: uuid.UUID,
    verified_hash: str,
    family_id: uuid.UUID,
    token_hash: bytes,
    ttl_seconds: int,
) -> User | None:
    """Creates family ``family_id`` with its first token if the user is unchanged.

    Returns the user as locked (it may have a newer name or role than the one
    verified), or None, with nothing written, if they were deactivated or
    their password hash is no longer ``verified_hash``.
    """
    row = (
        await conn.execute(
            _OPEN_FAMILY,
            {
                "user_id": user_id,
                "verified_hash": verified_hash,
                "family_id": family_id,
                "token_hash": token_hash,
                "ttl": timedelta(seconds=ttl_seconds),
            },
        )
    ).one_or_none()
    return user_of(row) if row is not None else None


async def create_family(session: AsyncSession, user_id: uuid.UUID) -> uuid.UUID:
    family_id = uuid.uuid4()
    await session.execute(insert(refresh_families).values(id=family_id, user_id=user_id))
    return family_id


async def add_token(
    session: AsyncSession, family_id: uuid.UUID, token_hash: bytes, ttl_seconds: int
) -> datetime:
    expires_at: datetime | None = await session.scalar(
        insert(refresh_tokens)
        .values(
            token_hash=token_hash,
            family_id=family_id,
            expires_at=func.now() + timedelta(seconds=ttl_seconds),
        )
        .returning(refresh_tokens.c.expires_at)
    )
    assert expires_at is not None
    return expires_at


async def owner_of(session: AsyncSession, token_hash: bytes) -> TokenOwner | None:
    """Whose token this is (no lock: a token's family and user never change)."""
    row = (
        await session.execute(
            select(refresh_tokens.c.family_id, refresh_families.c.user_id)
            .join(refresh_families, refresh_families.c.id == refresh_tokens.c.family_id)
            .where(refresh_tokens.c.token_hash == token_hash)
        )
    ).one_or_none()
    return TokenOwner(row.family_id, row.user_id) if row is not None else None


async def lock_token(
    session: AsyncSession, family_id: uuid.UUID, token_hash: bytes
) -> TokenState | None:
    """Locks the family row (serializing every use of its tokens), then reads the token."""
    revoked_at = (
        await session.execute(
            select(refresh_families.c.revoked_at)
            .where(refresh_families.c.id == family_id)
            .with_for_update()
        )
    ).one_or_none()
    if revoked_at is None:
        return None
    token = (
        await session.execute(
            select(
                refresh_tokens.c.rotated_at,
                (refresh_tokens.c.expires_at <= func.now()).label("expired"),
            ).where(refresh_tokens.c.token_hash == token_hash)
        )
    ).one_or_none()
    if token is None:
        return None
    return TokenState(
        family_revoked=revoked_at[0] is not None,
        rotated=token.rotated_at is not None,
        expired=bool(token.expired),
    )


async def mark_rotated(session: AsyncSession, token_hash: bytes) -> None:
    await session.execute(
        update(refresh_tokens)
        .where(refresh_tokens.c.token_hash == token_hash)
        .values(rotated_at=func.now())
    )


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, reason: str) -> bool:
    """Revokes one family and ends its access tokens; False if it was revoked already.

    Idempotent: a family revoked earlier had its access tokens ended then.
    """
    revoked = (
        await session.execute(
            update(refresh_families)
            .where(refresh_families.c.id == family_id, refresh_families.c.revoked_at.is_(None))
            .values(revoked_at=func.now(), revoked_reason=reason)
            .returning(refresh_families.c.user_id)
        )
    ).one_or_none()
    if revoked is None:
        return False
    await revocations_store.revoke_sessions(session, revoked.user_id, [family_id], reason)
    return True


async def revoke_user_families(
    session: AsyncSession,
    user_id: uuid.UUID,
    reason: str,
    *,
    keep: uuid.UUID | None = None,
) -> int:
    """Revokes every live family of a user except ``keep``, and ends their access tokens.

    Returns how many families it revoked.
    """
    query = (
        update(refresh_families)
        .where(refresh_families.c.user_id == user_id, refresh_families.c.revoked_at.is_(None))
        .values(revoked_at=func.now(), revoked_reason=reason)
        .returning(refresh_families.c.id)
    )
    if keep is not None:
        query = query.where(refresh_families.c.id != keep)
    family_ids = list((await session.execute(query)).scalars())
    await revocations_store.revoke_sessions(session, user_id, family_ids, reason)
    return len(family_ids)


async def purge_expired_tokens(session: AsyncSession, older_than: timedelta, limit: int) -> int:
    """Deletes up to ``limit`` tokens that expired more than ``older_than`` ago."""
    doomed = (
        select(refresh_tokens.c.token_hash)
        .where(refresh_tokens.c.expires_at < func.now() - older_than)
        .limit(limit)
        .scalar_subquery()
    )
    result = await session.execute(
        delete(refresh_tokens)
        .where(refresh_tokens.c.token_hash.in_(doomed))
        .returning(refresh_tokens.c.token_hash)
    )
    return len(result.all())


async def purge_empty_families(session: AsyncSession, older_than: timedelta, limit: int) -> int:
    """Deletes up to ``limit`` families whose tokens are all purged (a live one always has one)."""
    doomed = (
        select(refresh_families.c.id)
        .where(
            refresh_families.c.created_at < func.now() - older_than,
            ~exists().where(refresh_tokens.c.family_id == refresh_families.c.id),
        )
        .limit(limit)
        .scalar_subquery()
    )
    result = await session.execute(
        delete(refresh_families)
        .where(refresh_families.c.id.in_(doomed))
        .returning(refresh_families.c.id)
    )
    return len(result.all())
