"""``/api/v1/exams/{id}/results...``, ``/api/v1/me/results`` and the internal NDJSON export.

Result bodies are JSON whose numbers keep their two-decimal NUMERIC text, passed
through as bytes (the API's built by PostgreSQL; the internal export's lines
joined from text columns and the stored subjects, ``store/results.py``);
published ones are cached in Redis under keys that carry the exam's generation
(:mod:`results_service.cache`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse
from service_kit import service_credentials
from service_kit.errors import NotFound, UpstreamUnavailable
from service_kit.pagination import DEFAULT_LIMIT, Cursor, Cursors, Limit, Page
from service_kit.security import CurrentUser, Principal, require_role

from results_service.api.deps import DB, Cache, ReadSession, Runner, StaffUser, Writers
from results_service.api.exam_models import ExamOut
from results_service.api.result_models import GenerationOut, ResultOut
from results_service.generation.runner import ExamNotFound, GenerationTimedOut
from results_service.store.exams import get_exam
from results_service.store.results import (
    ExamHead,
    ResultRow,
    exam_head,
    published_keys_of,
    result_of,
    result_page,
    results_of_student,
    stream_exam_result_lines,
)

router = APIRouter(prefix="/api/v1", tags=["results"])
# Only our services, with a service token for results (bulk's exports), get in.
internal_router = service_credentials.internal_router()

StudentUser = Annotated[Principal, Depends(require_role("student"))]
STAFF = frozenset({"admin", "examiner"})
RESULT_CACHE = "result"
JSON = "application/json"


def _page_body(items: Sequence[str | bytes], next_cursor: str | None) -> bytes:
    parts = [i.encode() if isinstance(i, str) else i for i in items]
    return b'{"items":[' + b",".join(parts) + b'],"next_cursor":' + orjson.dumps(next_cursor) + b"}"


# -- generate -----------------------------------------------------------------------------


@router.post("/exams/{exam_id}/results/generate", response_model=GenerationOut)
async def generate_results(
    exam_id: uuid.UUID, caller: StaffUser, runner: Runner, writers: Writers
) -> GenerationOut:
    """Returns once results reflect every mark written before the call; concurrent
    calls coalesce onto one generation (any replica). 503 with Retry-After if that
    takes longer than the wait budget; the generation carries on."""
    try:
        summary = await runner.ensure_fresh(exam_id)
    except ExamNotFound as exc:
        raise NotFound("No such exam.") from exc
    except GenerationTimedOut as exc:
        raise UpstreamUnavailable(
            "Results are still being generated; try again shortly.", retry_after_seconds=5
        ) from exc
    # Their next list reads go to the primary: a replica must not show them
    # the results from before their own generation.
    await writers.mark(caller.user_id)
    return GenerationOut(
        exam_id=exam_id,
        generation=summary.generation,
        candidates=summary.candidates,
        complete=summary.complete,
        incomplete=summary.incomplete,
        changed=summary.changed,
        generated_at=summary.generated_at,
    )


# -- lists ---------------------------------------------------------------------------------


def _rank_cursor(values: list[object]) -> tuple[int, str]:
    rank_key, number = values
    if not isinstance(rank_key, int) or isinstance(rank_key, bool) or not isinstance(number, str):
        raise ValueError("cursor is (rank, student_number)")
    return rank_key, number


@router.get("/exams/{exam_id}/results", response_model=Page[ResultOut])
async def list_results(
    exam_id: uuid.UUID,
    _: StaffUser,
    session: ReadSession,
    cursors: Cursors,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """Results ordered by rank (nulls last), then student_number; keyset-paginated."""
    pages = cursors.scoped("exam-results", exam_id)
    after = pages.decode(cursor, _rank_cursor)
    if await exam_head(session, exam_id) is None:
        raise NotFound("No such exam.")
    rows = await result_page(session, exam_id, after=after, limit=limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = pages.encode([rows[-1].rank_key, rows[-1].student_number])
    return Response(_page_body([r.body for r in rows], next_cursor), media_type=JSON)


def _cached_value(row: ResultRow) -> bytes:
    # The owner's id travels with the body: a student may only read their own.
    return row.student_id.bytes + row.body.encode()


def _split(value: bytes) -> tuple[uuid.UUID, bytes]:
    return uuid.UUID(bytes=value[:16]), value[16:]


@router.get("/exams/{exam_id}/results/{student_number}", response_model=ResultOut)
async def get_result(
    exam_id: uuid.UUID,
    student_number: str,
    caller: CurrentUser,
    session: ReadSession,
    cache: Cache,
) -> Response:
    """Staff: any result. A student: their own, once the exam is published. Else 404."""
    head = await exam_head(session, exam_id)
    staff = caller.role in STAFF
    if head is None or not (staff or (caller.role == "student" and head.is_published)):
        raise NotFound("No such result.")
    key = cache.result_key(exam_id, head.generation, student_number)
    cached = await cache.get(RESULT_CACHE, key)
    if cached is not None:
        owner, body = _split(cached)
    else:
        row = await result_of(session, exam_id, student_number)
        if row is None:
            raise NotFound("No such result.")
        owner, body = row.student_id, row.body.encode()
        if row.generation == head.generation:
            await cache.put_many(RESULT_CACHE, {key: _cached_value(row)})
    if not staff and owner != caller.user_id:
        raise NotFound("No such result.")
    return Response(body, media_type=JSON)


def _published_cursor(values: list[object]) -> tuple[datetime, uuid.UUID]:
    published_at, exam_id = values
    return datetime.fromisoformat(str(published_at)), uuid.UUID(str(exam_id))


@router.get("/me/results", response_model=Page[ResultOut])
async def my_results(
    caller: StudentUser,
    session: ReadSession,
    cache: Cache,
    cursors: Cursors,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    """The caller's published results, most recently published first."""
    pages = cursors.scoped("my-results", caller.user_id)
    after = pages.decode(cursor, _published_cursor)
    keys = await published_keys_of(session, caller.user_id, after=after, limit=limit + 1)
    next_cursor = None
    if len(keys) > limit:
        keys = keys[:limit]
        next_cursor = pages.encode([keys[-1].published_at.isoformat(), str(keys[-1].exam_id)])
    cache_keys = [cache.result_key(k.exam_id, k.generation, k.student_number) for k in keys]
    values = await cache.get_many(RESULT_CACHE, cache_keys)
    missing = [k.exam_id for k, v in zip(keys, values, strict=True) if v is None]
    loaded = await results_of_student(session, caller.user_id, missing)
    bodies: list[bytes] = []
    fills: dict[str, bytes] = {}
    for key, cache_key, value in zip(keys, cache_keys, values, strict=True):
        if value is not None:
            bodies.append(_split(value)[1])
            continue
        row = loaded.get(key.exam_id)
        if row is None:  # regenerated away between the two reads
            continue
        bodies.append(row.body.encode())
        if row.generation == key.generation:
            fills[cache_key] = _cached_value(row)
    await cache.put_many(RESULT_CACHE, fills)
    return Response(_page_body(bodies, next_cursor), media_type=JSON)


# -- internal export ------------------------------------------------------------------------


@internal_router.get("/exams/{exam_id}")
async def internal_exam(
    exam_id: uuid.UUID,
    db: DB,
    fresh: Annotated[bool, Query(description="Read the primary instead of a replica.")] = False,
) -> Response:
    """The exam as admins see it (`ExamOut`: code, name, status, subjects with their max
    marks, in order), for bulk: uploads answer 404 for an unknown exam, wide files and
    templates need the subject codes, local checks the max marks."""
    async with db.read_session(fresh=fresh) as session:
        exam = await get_exam(session, exam_id)
    if exam is None:
        raise NotFound("No such exam.")
    return Response(ExamOut.of(exam).model_dump_json(), media_type="application/json")


@internal_router.get("/exams/{exam_id}/results.ndjson")
async def export_results(
    exam_id: uuid.UUID,
    db: DB,
    fresh: Annotated[bool, Query(description="Read the primary instead of a replica.")] = False,
) -> StreamingResponse:
    """Every result of the exam, one JSON object per line (the listing's JSON, byte for
    byte), in listing order; streamed from a server-side cursor a batch of rows at a
    time, never held whole (bulk's export worker reads it)."""
    async with db.read_session(fresh=fresh) as session:
        head: ExamHead | None = await exam_head(session, exam_id)
    if head is None:
        raise NotFound("No such exam.")

    async def lines() -> AsyncIterator[bytes]:
        async with db.read_session(fresh=fresh) as session:
            async for piece in stream_exam_result_lines(session, exam_id):
                yield piece

    return StreamingResponse(
        lines(),
        media_type="application/x-ndjson",
        headers={"X-Results-Generation": str(head.generation)},
    )
