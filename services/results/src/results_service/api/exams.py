"""``/api/v1/exams``: create, list, read and change exams."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Response, status
from service_kit.errors import ErrorCode, NotFound
from service_kit.openapi import raises
from service_kit.pagination import DEFAULT_LIMIT, Cursor, Cursors, Limit, Page, page_of
from service_kit.security import CurrentUser

from results_service.api.deps import DB, AdminUser, Cache, ReadSession, StaffUser, Writers
from results_service.api.exam_models import ExamCreate, ExamOut, ExamPatch
from results_service.api.exam_reads import exam_body
from results_service.store.exams import ExamRecord, list_exams
from results_service.usecases.exams import ExamDraft, create_exam, patch_exam

router = APIRouter(prefix="/api/v1/exams", tags=["exams"])


def _exam_cursor(values: list[object]) -> tuple[datetime, uuid.UUID]:
    created_at, exam_id = values
    return datetime.fromisoformat(str(created_at)), uuid.UUID(str(exam_id))


def _exam_key(exam: ExamRecord) -> tuple[str, str]:
    return exam.created_at.isoformat(), str(exam.id)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ExamOut)
@raises(ErrorCode.EXAM_CODE_TAKEN)
async def post_exam(body: ExamCreate, caller: AdminUser, db: DB, writers: Writers) -> ExamOut:
    draft = ExamDraft(
        code=body.code, name=body.name, term=body.term or None, definition=body.definition()
    )
    return ExamOut.of(await create_exam(db, writers, draft, caller.user_id))


@router.get("", response_model=Page[ExamOut])
async def get_exams(
    _: StaffUser,
    session: ReadSession,
    cursors: Cursors,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[ExamOut]:
    """Exams, newest first."""
    pages = cursors.scoped("exams")
    after = pages.decode(cursor, _exam_cursor)
    rows = await list_exams(session, after=after, limit=limit + 1)
    page, next_cursor = page_of(rows, limit, _exam_key, pages)
    return Page[ExamOut](items=[ExamOut.of(e) for e in page], next_cursor=next_cursor)


@router.get("/{exam_id}", response_model=ExamOut)
async def get_one_exam(
    exam_id: uuid.UUID, caller: CurrentUser, session: ReadSession, cache: Cache
) -> Response:
    """Admins and examiners see any exam; a student only a published one (else 404).

    Cache-aside in Redis under a key carrying the exam's version (api/exam_reads.py).
    """
    staff = caller.role in ("admin", "examiner")
    body = await exam_body(session, cache, exam_id, staff=staff)
    if body is None:
        raise NotFound("No such exam.")
    return Response(body, media_type="application/json")


@router.patch("/{exam_id}", response_model=ExamOut)
@raises(ErrorCode.EXAM_CODE_TAKEN, ErrorCode.EXAM_PUBLISHED)
async def patch_one_exam(
    exam_id: uuid.UUID, body: ExamPatch, caller: AdminUser, db: DB, writers: Writers
) -> ExamOut:
    """Changes the fields sent; a null is refused (422) except for ``term``, which it clears."""
    changes = body.changes()
    return ExamOut.of(await patch_exam(db, writers, exam_id, changes, caller.user_id))
