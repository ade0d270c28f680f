"""``/api/v1/exams``: create, list, read and change exams."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Response, status
from service_kit.errors import ErrorDetail, NotFound, ValidationFailed
from service_kit.security import CurrentUser

from results_service.api.deps import DB, AdminUser, Cache, ReadSession, StaffUser, Writers
from results_service.api.exam_models import ExamCreate, ExamOut, ExamPatch
from results_service.api.exam_reads import exam_body
from results_service.api.pagination import (
    DEFAULT_LIMIT,
    Cursor,
    Limit,
    Page,
    decode_cursor,
    page_of,
)
from results_service.store.exams import ExamRecord, list_exams
from results_service.usecases.exams import ExamChanges, ExamDraft, create_exam, patch_exam

router = APIRouter(prefix="/api/v1/exams", tags=["exams"])


def _exam_cursor(values: list[object]) -> tuple[datetime, uuid.UUID]:
    created_at, exam_id = values
    return datetime.fromisoformat(str(created_at)), uuid.UUID(str(exam_id))


def _exam_key(exam: ExamRecord) -> tuple[str, str]:
    return exam.created_at.isoformat(), str(exam.id)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ExamOut)
async def post_exam(body: ExamCreate, caller: AdminUser, db: DB, writers: Writers) -> ExamOut:
    draft = ExamDraft(
        code=body.code, name=body.name, term=body.term or None, definition=body.definition()
    )
    return ExamOut.of(await create_exam(db, writers, draft, caller.user_id))


@router.get("", response_model=Page[ExamOut])
async def get_exams(
    _: StaffUser, session: ReadSession, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[ExamOut]:
    """Exams, newest first."""
    after = decode_cursor(cursor, _exam_cursor)
    rows = await list_exams(session, after=after, limit=limit + 1)
    page, next_cursor = page_of(rows, limit, _exam_key)
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


_NOT_NULL = ("code", "name", "subjects", "grading_scale", "pass_percent", "rank_method")


@router.patch("/{exam_id}", response_model=ExamOut)
async def patch_one_exam(
    exam_id: uuid.UUID, body: ExamPatch, caller: AdminUser, db: DB, writers: Writers
) -> ExamOut:
    nulls = [f for f in _NOT_NULL if f in body.model_fields_set and getattr(body, f) is None]
    if nulls:
        raise ValidationFailed(
            details=[ErrorDetail(f, "NULL_NOT_ALLOWED", f"{f} cannot be null") for f in nulls]
        )
    changes = ExamChanges(
        code=body.code,
        name=body.name,
        term=body.term or None,
        term_set="term" in body.model_fields_set,
        subjects=tuple(s.record() for s in body.subjects) if body.subjects is not None else None,
        grading_scale=(
            tuple(b.record() for b in body.grading_scale)
            if body.grading_scale is not None
            else None
        ),
        pass_percent=body.pass_percent,
        rank_method=body.rank_method,
    )
    return ExamOut.of(await patch_exam(db, writers, exam_id, changes, caller.user_id))
