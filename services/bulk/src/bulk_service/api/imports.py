"""Uploads (marks and users imports), exports and the import template (API.md "Bulk jobs")."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response, status
from service_kit.errors import ErrorCode, NotFound, UpstreamUnavailable
from service_kit.openapi import raises
from service_kit.security import Principal

from bulk_service.api.deps import DB, AdminUser, Results, Settings, StaffUser
from bulk_service.api.models import JobOut
from bulk_service.api.upload_body import read_upload
from bulk_service.clients.results import ExamInfo, ResultsClient, ResultsUnavailable
from bulk_service.domain.jobs import (
    CSV_MEDIA_TYPE,
    XLSX_MEDIA_TYPE,
    FileFormat,
    ImportMode,
    Job,
    JobKind,
)
from bulk_service.domain.marks_file import Shape, template_header
from bulk_service.domain.templates import template_csv, template_xlsx
from bulk_service.usecases.jobs import (
    NewJob,
    create_export_job,
    create_upload_job,
    existing_job,
)

router = APIRouter(tags=["bulk"])

DryRun = Annotated[bool, Query(description="Validate only; nothing is applied.")]
Mode = Annotated[
    ImportMode,
    Query(description="`partial`: apply valid rows; `all_or_nothing`: one bad row applies none."),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=200,
        description="The same key from the same user returns the same job.",
    ),
]


def _accepted(job: Job, response: Response) -> JobOut:
    response.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return JobOut.of(job)


async def _exam(results: ResultsClient, exam_id: uuid.UUID) -> ExamInfo:
    try:
        exam = await results.exam(exam_id, fresh=True)
    except ResultsUnavailable as exc:
        raise UpstreamUnavailable("The results service cannot be reached; try again.") from exc
    if exam is None:
        raise NotFound("No such exam.")
    return exam


async def _upload(
    request: Request,
    response: Response,
    *,
    db: DB,
    settings: Settings,
    caller: Principal,
    new: NewJob,
) -> JobOut:
    # A replay of an Idempotency-Key is read and checked like any upload (a request
    # that is no upload gets its own error, never the key's job); the unique key
    # then answers with the job the first request made.
    upload = await read_upload(request, settings.max_upload_bytes)
    new = NewJob(
        kind=new.kind,
        format=upload.format,
        exam_id=new.exam_id,
        dry_run=new.dry_run,
        mode=new.mode,
        file_name=upload.file_name,
        idempotency_key=new.idempotency_key,
    )
    job, _ = await create_upload_job(db, caller, new, upload.chunks, settings.upload_part_bytes)
    return _accepted(job, response)


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {"schema": {"type": "string", "format": "binary"}},
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                "schema": {"type": "string", "format": "binary"}
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


@router.post(
    "/api/v1/exams/{exam_id}/imports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    openapi_extra=UPLOAD_BODY,
)
@raises(
    ErrorCode.BAD_REQUEST,
    ErrorCode.PAYLOAD_TOO_LARGE,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    ErrorCode.VALIDATION_FAILED,
    ErrorCode.NOT_FOUND,
    ErrorCode.UPSTREAM_UNAVAILABLE,
)
async def post_marks_import(
    exam_id: uuid.UUID,
    request: Request,
    response: Response,
    caller: StaffUser,
    db: DB,
    settings: Settings,
    results: Results,
    key: IdempotencyKey = None,
    dry_run: DryRun = False,
    mode: Mode = ImportMode.PARTIAL,
) -> JobOut:
    """Upload a marks file (CSV or XLSX, long or wide shape) for the exam."""
    await _exam(results, exam_id)
    new = NewJob(
        JobKind.MARKS_IMPORT,
        FileFormat.CSV,
        exam_id=exam_id,
        dry_run=dry_run,
        mode=mode,
        idempotency_key=key,
    )
    return await _upload(request, response, db=db, settings=settings, caller=caller, new=new)


@router.post(
    "/api/v1/users/imports",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobOut,
    openapi_extra=UPLOAD_BODY,
)
@raises(
    ErrorCode.BAD_REQUEST,
    ErrorCode.PAYLOAD_TOO_LARGE,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    ErrorCode.VALIDATION_FAILED,
)
async def post_users_import(
    request: Request,
    response: Response,
    caller: AdminUser,
    db: DB,
    settings: Settings,
    key: IdempotencyKey = None,
    dry_run: DryRun = False,
    mode: Mode = ImportMode.PARTIAL,
) -> JobOut:
    """Upload a users file: `email,full_name,role,student_number[,password]`."""
    new = NewJob(
        JobKind.USERS_IMPORT, FileFormat.CSV, dry_run=dry_run, mode=mode, idempotency_key=key
    )
    return await _upload(request, response, db=db, settings=settings, caller=caller, new=new)


@router.post(
    "/api/v1/exams/{exam_id}/exports", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut
)
@raises(ErrorCode.NOT_FOUND, ErrorCode.UPSTREAM_UNAVAILABLE)
async def post_export(
    exam_id: uuid.UUID,
    response: Response,
    caller: StaffUser,
    db: DB,
    results: Results,
    key: IdempotencyKey = None,
    format: Annotated[FileFormat, Query(description="csv (default) or xlsx.")] = FileFormat.CSV,
) -> JobOut:
    """Export the exam's results to a file to download when the job has succeeded."""
    earlier = await existing_job(db, caller, key)
    if earlier is not None:
        return _accepted(earlier, response)
    await _exam(results, exam_id)
    job, _ = await create_export_job(
        db,
        caller,
        NewJob(JobKind.RESULTS_EXPORT, format, exam_id=exam_id, idempotency_key=key),
    )
    return _accepted(job, response)


@router.get(
    "/api/v1/exams/{exam_id}/imports/template",
    response_class=Response,
    responses={200: {"content": {CSV_MEDIA_TYPE: {}, XLSX_MEDIA_TYPE: {}}}},
)
@raises(ErrorCode.NOT_FOUND, ErrorCode.UPSTREAM_UNAVAILABLE)
async def get_template(
    exam_id: uuid.UUID,
    _: StaffUser,
    results: Results,
    shape: Annotated[
        Literal["long", "wide"], Query(description="Row per mark or per student.")
    ] = "long",
    format: Annotated[FileFormat, Query(description="csv or xlsx.")] = FileFormat.CSV,
) -> Response:
    """An empty marks file for the exam: its header row (wide: one column per subject)."""
    exam = await _exam(results, exam_id)
    columns = template_header(Shape(shape), exam.subjects)
    body = template_csv(columns) if format is FileFormat.CSV else template_xlsx(columns)
    safe_code = "".join(c if c.isalnum() or c in "-_" else "_" for c in exam.code) or "exam"
    name = f"marks-{safe_code}-{shape}.{format.extension}"
    return Response(
        body,
        media_type=format.media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
