"""``/api/v1/exams/{id}/marks``: write a batch, list marks, list their audit."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from service_kit.errors import ErrorCode, NotFound
from service_kit.openapi import raises
from service_kit.pagination import DEFAULT_LIMIT, Cursor, Cursors, Limit, Page, page_of
from sqlalchemy.ext.asyncio import AsyncSession

from results_service.api.deps import (
    DB,
    AdminUser,
    Lookup,
    ReadSession,
    StaffUser,
    Writers,
    actor_of,
)
from results_service.api.mark_models import MarkAuditOut, MarkOut, PutMarksIn, PutMarksOut
from results_service.store.exams import exam_exists
from results_service.store.marks import AuditEntry, StoredMark, list_audit, list_marks
from results_service.store.students import student_id_by_number
from results_service.usecases.marks import put_marks

router = APIRouter(prefix="/api/v1/exams/{exam_id}/marks", tags=["marks"])


@router.put("", response_model=PutMarksOut)
# UPSTREAM_UNAVAILABLE: auth cannot be asked about students missing from the read model.
@raises(ErrorCode.EXAM_PUBLISHED, ErrorCode.UPSTREAM_UNAVAILABLE)
async def put_exam_marks(
    exam_id: uuid.UUID,
    body: PutMarksIn,
    caller: StaffUser,
    db: DB,
    lookup: Lookup,
    writers: Writers,
) -> PutMarksOut:
    """Writes the batch atomically: one invalid entry and nothing is written (422)."""
    outcome = await put_marks(
        db,
        lookup,
        writers,
        exam_id=exam_id,
        entries=body.entries(),
        actor=actor_of(caller),
        reason=body.reason,
    )
    return PutMarksOut(written=outcome.written, unchanged=outcome.unchanged)


async def _require_exam(session: AsyncSession, exam_id: uuid.UUID) -> None:
    if not await exam_exists(session, exam_id):
        raise NotFound("No such exam.")


def _mark_cursor(values: list[object]) -> tuple[uuid.UUID, str]:
    student_id, subject_code = values
    if not isinstance(subject_code, str):
        raise ValueError("subject code")
    return uuid.UUID(str(student_id)), subject_code


def _mark_key(mark: StoredMark) -> tuple[str, str]:
    return str(mark.student_id), mark.subject_code


@router.get("", response_model=Page[MarkOut])
async def get_exam_marks(
    exam_id: uuid.UUID,
    _: StaffUser,
    session: ReadSession,
    cursors: Cursors,
    subject_code: str | None = None,
    student_number: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[MarkOut]:
    """The exam's mark entries, by student then subject."""
    pages = cursors.scoped("exam-marks", exam_id, subject_code, student_number)
    after = pages.decode(cursor, _mark_cursor)
    await _require_exam(session, exam_id)
    student_id = None
    if student_number is not None:
        student_id = await student_id_by_number(session, student_number.strip())
        if student_id is None:
            return Page[MarkOut](items=[], next_cursor=None)
    rows = await list_marks(
        session,
        exam_id,
        subject_code=subject_code,
        student_id=student_id,
        after=after,
        limit=limit + 1,
    )
    page, next_cursor = page_of(rows, limit, _mark_key, pages)
    return Page[MarkOut](items=[MarkOut.of(m) for m in page], next_cursor=next_cursor)


def _audit_cursor(values: list[object]) -> int:
    (last_id,) = values
    if not isinstance(last_id, int) or isinstance(last_id, bool):
        raise ValueError("audit id")
    return last_id


def _audit_key(entry: AuditEntry) -> tuple[int]:
    return (entry.id,)


@router.get("/audit", response_model=Page[MarkAuditOut])
async def get_exam_mark_audit(
    exam_id: uuid.UUID,
    _: AdminUser,
    session: ReadSession,
    cursors: Cursors,
    student_number: str | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[MarkAuditOut]:
    """Every change of the exam's marks, newest first."""
    pages = cursors.scoped("exam-mark-audit", exam_id, student_number)
    before_id = pages.decode(cursor, _audit_cursor)
    await _require_exam(session, exam_id)
    student_id = None
    if student_number is not None:
        student_id = await student_id_by_number(session, student_number.strip())
        if student_id is None:
            return Page[MarkAuditOut](items=[], next_cursor=None)
    rows = await list_audit(
        session, exam_id, student_id=student_id, before_id=before_id, limit=limit + 1
    )
    page, next_cursor = page_of(rows, limit, _audit_key, pages)
    return Page[MarkAuditOut](items=[MarkAuditOut.of(a) for a in page], next_cursor=next_cursor)
