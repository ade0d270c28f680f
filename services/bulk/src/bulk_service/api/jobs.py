"""``/api/v1/jobs``: list, read, cancel, the errors file and the export download."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import StreamingResponse
from service_kit.errors import Conflict, ErrorCode
from service_kit.openapi import raises
from service_kit.pagination import DEFAULT_LIMIT, Cursor, Cursors, Limit, Page, page_of
from service_kit.security import CurrentUser

from bulk_service.api.deps import DB
from bulk_service.api.models import JobOut
from bulk_service.domain.csv_writing import CsvWriter
from bulk_service.domain.jobs import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, Job, JobKind, JobStatus
from bulk_service.store import files, staging
from bulk_service.store import jobs as jobs_store
from bulk_service.usecases.jobs import cancel_job, download_name, visible_job

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])

ERRORS_COLUMNS = ("row", "column", "code", "message", "value")


def _cursor(values: list[object]) -> tuple[datetime, uuid.UUID]:
    created_at, job_id = values
    return datetime.fromisoformat(str(created_at)), uuid.UUID(str(job_id))


def _key(job: Job) -> tuple[str, str]:
    return job.created_at.isoformat(), str(job.id)


@router.get("", response_model=Page[JobOut])
async def get_jobs(
    caller: CurrentUser,
    db: DB,
    cursors: Cursors,
    kind: Annotated[JobKind | None, Query(description="Only jobs of this kind.")] = None,
    status_: Annotated[
        JobStatus | None, Query(alias="status", description="Only jobs in this status.")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[JobOut]:
    """The caller's jobs, newest first (an admin sees everyone's)."""
    mine = None if caller.role == "admin" else caller.user_id
    pages = cursors.scoped("jobs", str(mine), kind, status_)
    after = pages.decode(cursor, _cursor)
    async with db.read_session(fresh=True) as session:
        rows = await jobs_store.list_jobs(
            session, created_by=mine, kind=kind, status=status_, after=after, limit=limit + 1
        )
    page, next_cursor = page_of(rows, limit, _key, pages)
    return Page[JobOut](items=[JobOut.of(j) for j in page], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobOut)
async def get_job(job_id: uuid.UUID, caller: CurrentUser, db: DB) -> JobOut:
    return JobOut.of(await visible_job(db, caller, job_id))


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut)
@raises(ErrorCode.CONFLICT)
async def post_cancel(job_id: uuid.UUID, caller: CurrentUser, db: DB) -> JobOut:
    """A queued job is cancelled at once, a running one at its next chunk; 409 once
    finished, and for an all_or_nothing job once it has begun to apply rows."""
    return JobOut.of(await cancel_job(db, caller, job_id))


@router.get(
    "/{job_id}/errors",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "The errors file."}},
)
async def get_errors(job_id: uuid.UUID, caller: CurrentUser, db: DB) -> StreamingResponse:
    """`row,column,code,message,value`, one line per problem, in row order."""
    job = await visible_job(db, caller, job_id)

    async def lines() -> AsyncIterator[bytes]:
        # The same CSV as exports (BOM, CRLF, formula-safe): values come from uploads.
        writer = CsvWriter()
        yield writer.header(ERRORS_COLUMNS)
        async with db.read_session(fresh=True) as session:
            async for batch in staging.iter_errors(session, job.id):
                yield writer.rows(batch)

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="job-{job.id}-errors.csv"'},
    )


@router.get(
    "/{job_id}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {CSV_MEDIA_TYPE: {}, XLSX_MEDIA_TYPE: {}}}},
)
@raises(ErrorCode.CONFLICT)
async def get_download(job_id: uuid.UUID, caller: CurrentUser, db: DB) -> StreamingResponse:
    """The export file; 409 until the export has succeeded."""
    job = await visible_job(db, caller, job_id)
    if job.kind is not JobKind.RESULTS_EXPORT or job.status is not JobStatus.SUCCEEDED:
        raise Conflict("There is no file to download until the export has succeeded.")
    if job.files_purged:
        raise Conflict("The file was deleted after the retention period; export again.")
    name = job.file_name or download_name(job, None)

    async def parts() -> AsyncIterator[bytes]:
        async with db.read_session(fresh=True) as session:
            async for part in files.iter_parts(session, job.id, files.EXPORT):
                yield part

    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if job.file_bytes is not None:
        headers["Content-Length"] = str(job.file_bytes)
    return StreamingResponse(parts(), media_type=job.format.media_type, headers=headers)
