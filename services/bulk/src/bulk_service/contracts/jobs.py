"""bulk's own events: the command that starts a job, and the news that one ended."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field
from service_kit.messaging.events import Event

_JOB = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"
_USER = "0b7c8f0e-58a5-4ad4-9d5b-1f0a3c6e2d11"
_EXAM = "2b9e4c1a-7d3f-4e8a-9b6c-1d2e3f4a5b6c"

JobKind = Literal["marks_import", "users_import", "results_export"]


class BulkJobRequestedV1(Event):
    """A command to bulk's own workers: run (or go on with) this job.

    Written in the transaction that created the job (or that moved it to its
    next stage); any worker may take it. The job row is the truth: a worker
    claims it with a lease, so a command delivered twice, or one for a job
    another worker holds, does nothing. A lost command costs only time: the
    workers' sweep finds queued jobs with no command taken.
    """

    event_type = "bulk.job.requested"
    event_version = 1
    producer = "bulk"

    job_id: uuid.UUID = Field(description="The job to run.", examples=[_JOB])
    kind: JobKind = Field(description="What the job does.", examples=["marks_import"])


class BulkJobCompletedV1(Event):
    """A job ended (succeeded, completed with errors, failed or was cancelled).

    Written in the transaction that finished the job. The notifier tells the
    job's creator: `import_finished` for imports, `export_ready` for a
    successful export (API.md Notifications), linking to `/jobs/<job id>`.
    """

    event_type = "bulk.job.completed"
    event_version = 1
    producer = "bulk"

    job_id: uuid.UUID = Field(description="The job.", examples=[_JOB])
    kind: JobKind = Field(description="What the job did.", examples=["marks_import"])
    status: Literal["succeeded", "completed_with_errors", "failed", "cancelled"] = Field(
        description="How it ended.", examples=["completed_with_errors"]
    )
    created_by: uuid.UUID = Field(description="Who asked for the job.", examples=[_USER])
    exam_id: uuid.UUID | None = Field(
        description="The exam of a marks import or export; null for users imports.",
        examples=[_EXAM],
    )
    dry_run: bool = Field(description="Nothing was applied by design.", examples=[False])
    format: Literal["csv", "xlsx"] = Field(description="The file's format.", examples=["csv"])
    rows_total: int | None = Field(
        description="Entries in the file (null when it could not be read).", examples=[120]
    )
    rows_ok: int = Field(description="Entries applied (or exported).", examples=[118])
    rows_unchanged: int = Field(description="Entries equal to what was stored.", examples=[0])
    rows_failed: int = Field(description="Entries with an error.", examples=[2])
    error_code: str | None = Field(
        description="Why the whole job failed, else null.", examples=[None]
    )
    finished_at: datetime = Field(
        description="When it ended (UTC).", examples=["2026-12-05T10:15:00Z"]
    )
