"""The students read model: auth's students as results needs them.

Fed by ``user.created`` / ``user.updated`` and by lookups in auth's internal
API. Both carry auth's per-user ``version``; a write with a version that is
not newer than the one held is ignored, because events of one user may arrive
out of order (and a lookup may have already stored a newer state).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import Text, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.store.tables import students


@dataclass(frozen=True, slots=True)
class StudentRecord:
    """One student as auth describes them."""

    user_id: uuid.UUID
    student_number: str
    full_name: str
    email: str
    active: bool
    version: int


async def student_ids_by_number(
    session: AsyncSession, numbers: Collection[str]
) -> dict[str, uuid.UUID]:
    """User ids of the ``numbers`` the read model knows (unknown ones are absent)."""
    if not numbers:
        return {}
    rows = await session.execute(
        select(students.c.student_number, students.c.user_id).where(
            students.c.student_number
            == any_(bindparam("numbers", list(numbers), type_=ARRAY(Text)))
        )
    )
    return {number: user_id for number, user_id in rows}


async def unknown_student_numbers(session: AsyncSession, numbers: Collection[str]) -> list[str]:
    """The distinct non-empty ``numbers`` the read model does not know, sorted."""
    wanted = sorted({n for n in numbers if n})
    if not wanted:
        return []
    number = func.unnest(bindparam("wanted", wanted, type_=ARRAY(Text))).column_valued("n")
    rows = await session.scalars(
        select(number).where(
            ~select(students.c.user_id).where(students.c.student_number == number).exists()
        )
    )
    return sorted(rows.all())


async def student_id_by_number(session: AsyncSession, number: str) -> uuid.UUID | None:
    found: uuid.UUID | None = await session.scalar(
        select(students.c.user_id).where(students.c.student_number == number)
    )
    return found


async def upsert_students(session: AsyncSession, records: Sequence[StudentRecord]) -> int:
    """Inserts or refreshes ``records`` in one statement; returns how many rows changed.

    A record whose version is not above the held one is skipped, so a late
    ``user.created`` never undoes a newer ``user.updated``.
    """
    if not records:
        return 0
    # One row per user (the newest), or Postgres refuses the statement
    # ("ON CONFLICT DO UPDATE command cannot affect row a second time").
    newest: dict[uuid.UUID, StudentRecord] = {}
    for record in records:
        held = newest.get(record.user_id)
        if held is None or record.version > held.version:
            newest[record.user_id] = record
    statement = insert(students).values(
        [
            {
                "user_id": r.user_id,
                "student_number": r.student_number,
                "full_name": r.full_name,
                "email": r.email,
                "active": r.active,
                "source_version": r.version,
            }
            for r in newest.values()
        ]
    )
    statement = statement.on_conflict_do_update(
        index_elements=[students.c.user_id],
        set_={
            "student_number": statement.excluded.student_number,
            "full_name": statement.excluded.full_name,
            "email": statement.excluded.email,
            "active": statement.excluded.active,
            "source_version": statement.excluded.source_version,
            "updated_at": func.now(),
        },
        where=students.c.source_version < statement.excluded.source_version,
    )
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)


async def mark_former_student(session: AsyncSession, user_id: uuid.UUID, version: int) -> bool:
    """A student whose role changed: kept (their marks point at them) but inactive."""
    result = await session.execute(
        update(students)
        .where(students.c.user_id == user_id, students.c.source_version < version)
        .values(active=False, source_version=version, updated_at=func.now())
    )
    return bool(getattr(result, "rowcount", 0))
