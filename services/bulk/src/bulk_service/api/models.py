"""The job as API.md shows it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from bulk_service.domain.jobs import Job


class JobErrorOut(BaseModel):
    code: str = Field(description="Why the whole job failed.", examples=["FILE_ENCODING"])
    message: str = Field(description="For a person.")


class JobOut(BaseModel):
    id: uuid.UUID
    kind: Literal["marks_import", "users_import", "results_export"]
    status: Literal[
        "queued", "running", "succeeded", "completed_with_errors", "failed", "cancelled"
    ]
    exam_id: uuid.UUID | None = Field(description="The exam (marks imports and exports).")
    dry_run: bool
    mode: Literal["partial", "all_or_nothing"] | None = Field(description="Imports only.")
    format: Literal["csv", "xlsx"]
    file_name: str | None = Field(description="The uploaded file's name, when it had one.")
    progress: float = Field(
        ge=0, le=1, description="Share of the work done, 0 to 1 (reading, then applying)."
    )
    rows_total: int | None = Field(
        description="Entries in the file (a wide marks row holds one per filled mark cell); "
        "known once the whole file has been read."
    )
    rows_ok: int
    rows_unchanged: int
    rows_failed: int
    created_by: uuid.UUID
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: JobErrorOut | None

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            kind=job.kind.value,
            status=job.status.value,
            exam_id=job.exam_id,
            dry_run=job.dry_run,
            mode=job.mode.value if job.mode else None,
            format=job.format.value,
            file_name=job.file_name,
            progress=float(job.progress),
            rows_total=job.rows_total,
            rows_ok=job.rows_ok,
            rows_unchanged=job.rows_unchanged,
            rows_failed=job.rows_failed,
            created_by=job.created_by,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            error=(
                JobErrorOut(code=job.error_code, message=job.error_message or job.error_code)
                if job.error_code
                else None
            ),
        )
