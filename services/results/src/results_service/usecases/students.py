"""Resolving student numbers to students: the read model first, then auth."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy.ext.asyncio import AsyncSession

from results_service.clients.auth import StudentLookup
from results_service.store.students import (
    student_ids_by_number,
    unknown_student_numbers,
    upsert_students,
)


async def resolve_student_numbers(
    session: AsyncSession, lookup: StudentLookup, numbers: Collection[str]
) -> dict[str, uuid.UUID]:
    """User ids of the ``numbers`` that belong to students; unknown numbers are absent.

    Numbers the read model lacks are asked of auth in batches and stored, so
    a student created a moment ago (whose ``user.created`` has not arrived
    yet) is found. Raises :class:`~results_service.clients.auth.StudentLookupUnavailable`
    when auth cannot be asked: better no answer than a wrong "not found".
    """
    wanted = {n for n in numbers if n}
    known = await student_ids_by_number(session, wanted)
    missing = sorted(wanted - known.keys())
    if not missing:
        return known
    found = [r for r in await lookup.lookup(missing) if r.student_number in wanted]
    if found:
        await upsert_students(session, found)
        # Re-read: a newer state already held wins over the lookup's.
        known.update(await student_ids_by_number(session, {r.student_number for r in found}))
    return known


async def look_up_unknown_students(
    session: AsyncSession, lookup: StudentLookup, numbers: Collection[str]
) -> None:
    """Asks auth about the ``numbers`` the read model lacks and stores the students found.

    What :func:`resolve_student_numbers` does, without reading every known
    student back: for an import chunk, SQL then matches numbers itself.
    Raises :class:`~results_service.clients.auth.StudentLookupUnavailable` when
    auth cannot be asked.
    """
    missing = await unknown_student_numbers(session, numbers)
    if not missing:
        return
    wanted = set(missing)
    found = [r for r in await lookup.lookup(missing) if r.student_number in wanted]
    if found:
        await upsert_students(session, found)
