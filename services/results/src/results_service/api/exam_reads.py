"""Cache-aside for ``GET /api/v1/exams/{id}`` (used by :mod:`results_service.api.exams`).

The key carries the exam's version token (status, ``updated_at``, marks and
results versions, publication times: whatever the JSON shows), read by one
primary-key lookup; a body is cached only if the exam it came from has that
same token, so a key never holds another version's body.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from results_service.api.exam_models import ExamOut
from results_service.cache import ResultsCache
from results_service.store.exams import get_exam
from results_service.store.results import ExamVersion, exam_version

EXAM_CACHE = "exam"


async def exam_body(
    session: AsyncSession, cache: ResultsCache, exam_id: uuid.UUID, *, staff: bool
) -> bytes | None:
    """The exam's JSON, or None when it does not exist or the caller may not see it
    (a student sees an exam only once published)."""
    version = await exam_version(session, exam_id)
    if version is None or not (staff or version.status == "published"):
        return None
    key = cache.exam_key(exam_id, version.token)
    cached = await cache.get(EXAM_CACHE, key)
    if cached is not None:
        return cached
    exam = await get_exam(session, exam_id)
    if exam is None:
        return None
    body = ExamOut.of(exam).model_dump_json().encode()
    loaded = ExamVersion.of(
        exam.status,
        exam.updated_at,
        exam.marks_version,
        exam.results_version,
        exam.results_generated_at,
        exam.publish_at,
        exam.published_at,
    )
    if loaded.token == version.token:
        await cache.put_many(EXAM_CACHE, {key: body})
    if not (staff or exam.is_published):
        return None
    return body
