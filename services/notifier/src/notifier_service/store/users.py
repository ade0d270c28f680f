"""The users read model and preferences: who to address, how, and whether by email."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from notifier_service.store.tables import preferences, users


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user as the notifier knows them."""

    id: uuid.UUID
    email: str
    full_name: str
    role: str
    active: bool
    version: int


async def upsert_users(session: AsyncSession, records: Iterable[UserRecord]) -> None:
    """Stores users, each only if its ``version`` is above the one held: auth's events
    may arrive out of order, and an older state must never overwrite a newer one."""
    values = [
        {
            "id": r.id,
            "email": r.email,
            "full_name": r.full_name,
            "role": r.role,
            "active": r.active,
            "version": r.version,
        }
        for r in records
    ]
    if not values:
        return
    statement = insert(users).values(values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[users.c.id],
            set_={
                "email": statement.excluded.email,
                "full_name": statement.excluded.full_name,
                "role": statement.excluded.role,
                "active": statement.excluded.active,
                "version": statement.excluded.version,
                "updated_at": text("now()"),
            },
            where=users.c.version < statement.excluded.version,
        )
    )


async def users_by_id(
    session: AsyncSession, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, UserRecord]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    result = await session.execute(select(users).where(users.c.id.in_(wanted)))
    return {
        row.id: UserRecord(row.id, row.email, row.full_name, row.role, row.active, row.version)
        for row in result
    }


async def email_opt_outs(session: AsyncSession, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Those of ``ids`` who turned email off (no row: email on)."""
    wanted = list(set(ids))
    if not wanted:
        return set()
    result = await session.execute(
        select(preferences.c.user_id).where(
            preferences.c.user_id.in_(wanted), preferences.c.email.is_(False)
        )
    )
    return set(result.scalars())


async def email_preference(session: AsyncSession, user_id: uuid.UUID) -> bool:
    result = await session.execute(
        select(preferences.c.email).where(preferences.c.user_id == user_id)
    )
    value = result.scalar_one_or_none()
    return True if value is None else bool(value)


async def set_email_preference(session: AsyncSession, user_id: uuid.UUID, email: bool) -> None:
    statement = insert(preferences).values(user_id=user_id, email=email)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[preferences.c.user_id],
            set_={"email": statement.excluded.email, "updated_at": text("now()")},
        )
    )
