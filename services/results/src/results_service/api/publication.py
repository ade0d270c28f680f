"""``POST /api/v1/exams/{id}/publish``: publish now, or schedule (admin)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from service_kit.errors import ErrorCode, NotFound
from service_kit.openapi import raises

from results_service.api.deps import DB, AdminUser, Writers
from results_service.api.exam_models import ExamOut
from results_service.api.result_models import PublishIn
from results_service.publication.service import publish_exam
from results_service.store.exams import get_exam

router = APIRouter(prefix="/api/v1/exams", tags=["exams"])


@router.post("/{exam_id}/publish", response_model=ExamOut)
@raises(ErrorCode.EXAM_PUBLISHED, ErrorCode.RESULTS_STALE)
async def publish(
    exam_id: uuid.UUID, caller: AdminUser, db: DB, writers: Writers, body: PublishIn | None = None
) -> ExamOut:
    """409 RESULTS_STALE unless results are fresh; 409 EXAM_PUBLISHED if published."""
    await publish_exam(db, exam_id, at=body.at if body else None)
    await writers.mark(caller.user_id)
    async with db.read_session(fresh=True) as session:
        exam = await get_exam(session, exam_id)
    if exam is None:
        raise NotFound("No such exam.")
    return ExamOut.of(exam)
