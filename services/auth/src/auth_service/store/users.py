"""SQL for users."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import Row, Text, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from auth_service.domain.users import EmailAddress, Role, User
from auth_service.store.tables import users

RowLock = Literal["share", "update"] | None

_SORT_KEY = users.c.email_canonical

# Built once with a bind parameter: sign-in runs it for every attempt, and
# building the statement and its cache key anew each time cost as much CPU as
# the round trip itself.
_BY_EMAIL = select(users).where(users.c.email_canonical == bindparam("email_key", type_=Text))


def user_of(row: Row[Any]) -> User:
    """The user of a row that has every column of ``users``."""
    return User(
        id=row.id,
        email=row.email,
        full_name=row.full_name,
        role=Role(row.role),
        student_number=row.student_number,
        active=row.active,
        created_at=row.created_at,
        version=row.version,
        password_hash=row.password_hash,
        access_epoch=row.access_epoch,
    )


async def insert_user(
    session: AsyncSession,
    *,
    email: EmailAddress,
    full_name: str,
    role: Role,
    student_number: str | None,
    password_hash: str | None,
    active: bool,
) -> User | None:
    """The new user, or None if the email or student number is taken.

    ON CONFLICT DO NOTHING over every unique index: a concurrent create of the
    same email (in any letter case, or a lookalike of it) loses cleanly instead
    of aborting the transaction with an IntegrityError.
    """
    row = (
        await session.execute(
            insert(users)
            .values(
                id=uuid.uuid4(),
                email=email.address,
                email_canonical=email.canonical,
                full_name=full_name,
                role=role.value,
                student_number=student_number,
                password_hash=password_hash,
                active=active,
            )
            .on_conflict_do_nothing()
            .returning(*users.c)
        )
    ).one_or_none()
    return user_of(row) if row is not None else None


async def email_taken(session: AsyncSession, email_key: str) -> bool:
    """Whether an account has the canonical address ``email_key``."""
    found = await session.scalar(select(users.c.id).where(users.c.email_canonical == email_key))
    return found is not None


async def get_user(
    session: AsyncSession, user_id: uuid.UUID, *, lock: RowLock = None
) -> User | None:
    query = select(users).where(users.c.id == user_id)
    if lock == "share":
        query = query.with_for_update(read=True)
    elif lock == "update":
        # NO KEY UPDATE: does not block the foreign-key checks of inserts that
        # reference this user (new refresh families).
        query = query.with_for_update(key_share=True)
    row = (await session.execute(query)).one_or_none()
    return user_of(row) if row is not None else None


async def get_user_by_email(conn: AsyncConnection, email_key: str) -> User | None:
    """The user whose canonical address is ``email_key`` (domain.users.email_key)."""
    row = (await conn.execute(_BY_EMAIL, {"email_key": email_key})).one_or_none()
    return user_of(row) if row is not None else None


async def get_student(session: AsyncSession, student_number: str) -> User | None:
    row = (
        await session.execute(select(users).where(users.c.student_number == student_number))
    ).one_or_none()
    return user_of(row) if row is not None else None


async def find_students(session: AsyncSession, student_numbers: Sequence[str]) -> list[User]:
    if not student_numbers:
        return []
    rows = await session.execute(
        select(users)
        .where(users.c.student_number.in_(sorted(set(student_numbers))))
        .order_by(users.c.student_number)
    )
    return [user_of(row) for row in rows]


def _like_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def list_users(
    session: AsyncSession,
    *,
    role: Role | None,
    q: str | None,
    after: str | None,
    limit: int,
) -> tuple[list[User], str | None]:
    """One page ordered by canonical email, and the sort key to continue after (or None).

    Keyset pagination: the page after ``after`` costs the same however deep it
    is, and rows created meanwhile neither repeat nor vanish.
    """
    query = select(users, _SORT_KEY.label("sort_key")).order_by(_SORT_KEY).limit(limit + 1)
    if role is not None:
        query = query.where(users.c.role == role.value)
    if q:
        pattern = _like_pattern(q)
        query = query.where(
            or_(
                users.c.email.ilike(pattern, escape="\\"),
                users.c.full_name.ilike(pattern, escape="\\"),
            )
        )
    if after is not None:
        query = query.where(after < _SORT_KEY)
    rows = list(await session.execute(query))
    if len(rows) > limit:
        return [user_of(r) for r in rows[:limit]], str(rows[limit - 1].sort_key)
    return [user_of(r) for r in rows], None


async def update_user(session: AsyncSession, user_id: uuid.UUID, **changes: object) -> User:
    """Applies ``changes``, bumps the version; the row must exist (lock it first)."""
    row = (
        await session.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(**changes, version=users.c.version + 1, updated_at=func.now())
            .returning(*users.c)
        )
    ).one()
    return user_of(row)


async def set_password_hash(session: AsyncSession, user_id: uuid.UUID, new_hash: str) -> None:
    """Stores a password hash. Not a change other services see: no version bump, no event."""
    await session.execute(update(users).where(users.c.id == user_id).values(password_hash=new_hash))
