"""Jobs: their kinds, statuses and stages, and the rules that move them.

A job is a row (``store.jobs``); these rules decide, from what a job holds,
whether it may be cancelled, how it ends, and how far along it is. The worker
and the answer consumer apply them; they never decide on their own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class JobKind(StrEnum):
    MARKS_IMPORT = "marks_import"
    USERS_IMPORT = "users_import"
    RESULTS_EXPORT = "results_export"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


class Stage(StrEnum):
    """Where a job's work stands; a worker that takes a job over starts from here."""

    READING = "reading"
    """Parsing the upload into staged entries (restarted from the top when taken over)."""
    CHECKING = "checking"
    """all_or_nothing: every chunk goes out as a dry run first; nothing is applied."""
    AWAITING_CHECK = "awaiting_check"
    """Every checking chunk is out; their answers decide between applying and failing."""
    APPLYING = "applying"
    """Chunks go out for real (from the first one not yet sent)."""
    WAITING = "waiting"
    """Every chunk is out; the answers complete the job."""
    EXPORTING = "exporting"
    """Writing the export file (restarted from the top when taken over)."""
    DONE = "done"


class ImportMode(StrEnum):
    PARTIAL = "partial"
    ALL_OR_NOTHING = "all_or_nothing"


class FileFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self]

    @property
    def extension(self) -> str:
        return self.value


CSV_MEDIA_TYPE = "text/csv"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MEDIA_TYPES = {FileFormat.CSV: CSV_MEDIA_TYPE, FileFormat.XLSX: XLSX_MEDIA_TYPE}

READING_SHARE = Decimal("0.2")
"""Share of the progress bar for reading the file; sending and applying takes the rest
(applying is where the time goes: results writes each mark with its audit)."""


class JobError(StrEnum):
    """Codes of a job that failed as a whole (``error.code``), beside the file's FILE_*."""

    HEADER_INVALID = "FILE_HEADER_INVALID"
    """The header row cannot be used; the errors file names each column."""
    ROWS_INVALID = "ROWS_INVALID"
    """all_or_nothing: some rows are invalid, so none was applied."""
    EXAM_NOT_FOUND = "EXAM_NOT_FOUND"
    """The exam was deleted or cannot be read any more."""
    RESULTS_UNAVAILABLE = "RESULTS_UNAVAILABLE"
    """An export could not read the results after every retry."""
    RESULTS_INVALID = "RESULTS_INVALID"
    """An export met a line of results' stream that is not a Result (never retried:
    the same stream would break the same way)."""
    NO_ROWS = "FILE_NO_ROWS"
    """A header row and nothing else."""


@dataclass(frozen=True, slots=True)
class Job:
    """A job as its row holds it."""

    id: uuid.UUID
    kind: JobKind
    status: JobStatus
    stage: Stage
    exam_id: uuid.UUID | None
    dry_run: bool
    mode: ImportMode | None
    format: FileFormat
    file_name: str | None
    file_bytes: int | None
    created_by: uuid.UUID
    created_by_role: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    progress: Decimal
    rows_total: int | None
    rows_ok: int
    rows_unchanged: int
    rows_failed: int
    error_code: str | None
    error_message: str | None
    cancel_requested: bool
    chunks_total: int | None
    chunks_sent: int
    chunks_answered: int
    attempts: int
    files_purged: bool
    """The retention cleanup removed the job's files and errors."""

    @property
    def all_or_nothing(self) -> bool:
        return self.mode is ImportMode.ALL_OR_NOTHING

    def visible_to(self, user_id: uuid.UUID, role: str) -> bool:
        """Only the creator and admins see a job (404 for anyone else, API.md)."""
        return role == "admin" or self.created_by == user_id


class CancelRefused(Exception):
    """The job can no longer be cancelled (409 CONFLICT)."""


def cancellation(job: Job) -> JobStatus | None:
    """What cancelling ``job`` does: the status it takes at once, or None when a running
    job stops at its next chunk. Raises :class:`CancelRefused` when it is too late.

    API.md: a queued job is cancelled at once, a running one at its next chunk;
    409 once finished, and for an all_or_nothing job once it has begun to apply
    rows (the rows it applied could no longer be taken back as one).
    """
    if job.status.finished:
        raise CancelRefused(f"The job has already {job.status.value.replace('_', ' ')}.")
    if job.mode is ImportMode.ALL_OR_NOTHING and not job.dry_run and _applying_begun(job):
        raise CancelRefused("An all_or_nothing import cannot be cancelled once it applies rows.")
    if job.status is JobStatus.QUEUED:
        return JobStatus.CANCELLED
    return None


def _applying_begun(job: Job) -> bool:
    # chunks_sent counts the chunks of the current stage (reset when checking ends).
    return job.stage is Stage.WAITING or (job.stage is Stage.APPLYING and job.chunks_sent > 0)


def final_status(job: Job) -> JobStatus:
    """How a job whose work is over ends, from its counts and flags."""
    if job.error_code is not None:
        return JobStatus.FAILED
    if job.cancel_requested:
        return JobStatus.CANCELLED
    if job.rows_failed:
        return JobStatus.COMPLETED_WITH_ERRORS
    return JobStatus.SUCCEEDED


def reading_progress(bytes_read: int, bytes_total: int) -> Decimal:
    if bytes_total <= 0:
        return Decimal(0)
    share = Decimal(min(bytes_read, bytes_total)) / Decimal(bytes_total)
    return (share * READING_SHARE).quantize(Decimal("0.0001"))


def applying_progress(entries_done: int, entries_total: int) -> Decimal:
    """Progress once the file is read: the reading share plus the share of entries answered."""
    if entries_total <= 0:
        return Decimal(1)
    share = Decimal(min(entries_done, entries_total)) / Decimal(entries_total)
    return (READING_SHARE + share * (1 - READING_SHARE)).quantize(Decimal("0.0001"))
