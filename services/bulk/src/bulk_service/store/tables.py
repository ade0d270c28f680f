"""Tables of the bulk service (schema ``bulk``), as SQLAlchemy Core.

Migration 0001 creates exactly these tables (``tests/test_schema.py``
compares the two).

- ``jobs``: one row per job, its counts and where its work stands (``stage``),
  and the lease of the worker running it (ADR 0014).
- ``job_files``: a job's files (the upload, the export) as ordered parts of
  at most ``UPLOAD_PART_BYTES``: any replica reads what any other stored, and
  nothing is on a local disk.
- ``staged_entries``: the parsed, locally valid entries of an import, waiting
  to be sent in chunks; duplicates are found here, in SQL, across the file.
- ``job_chunks``: every chunk sent, and its answer once it came.
- ``job_errors``: every problem of every row (the errors file).
"""

from __future__ import annotations

from service_kit.messaging.tables import kit_tables
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from bulk_service.settings import SCHEMA

metadata = MetaData(
    schema=SCHEMA,
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    },
)

JOB_KINDS = ("marks_import", "users_import", "results_export")
JOB_STATUSES = ("queued", "running", "succeeded", "completed_with_errors", "failed", "cancelled")
JOB_STAGES = (
    "reading",
    "checking",
    "awaiting_check",
    "applying",
    "waiting",
    "exporting",
    "done",
)
FILE_ROLES = ("upload", "export")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


jobs = Table(
    "jobs",
    metadata,
    Column("id", UUID(as_uuid=True), nullable=False),
    Column("kind", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'queued'")),
    Column(
        "stage",
        Text,
        nullable=False,
        comment="Where the work stands (bulk_service.domain.jobs.Stage).",
    ),
    Column("exam_id", UUID(as_uuid=True), nullable=True),
    Column("dry_run", Boolean, nullable=False, server_default=text("false")),
    Column("mode", Text, nullable=True, comment="partial | all_or_nothing (imports)."),
    Column("format", Text, nullable=False, comment="csv | xlsx."),
    Column("file_name", Text, nullable=True, comment="The upload's name, or the export's."),
    Column("file_bytes", BigInteger, nullable=True, comment="Size of the upload or export."),
    Column("created_by", UUID(as_uuid=True), nullable=False),
    Column("created_by_role", Text, nullable=False),
    Column("idempotency_key", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("progress", Numeric(5, 4), nullable=False, server_default=text("0")),
    Column("rows_total", BigInteger, nullable=True),
    Column("rows_ok", BigInteger, nullable=False, server_default=text("0")),
    Column("rows_unchanged", BigInteger, nullable=False, server_default=text("0")),
    Column("rows_failed", BigInteger, nullable=False, server_default=text("0")),
    Column("error_code", Text, nullable=True),
    Column("error_message", Text, nullable=True),
    Column("cancel_requested", Boolean, nullable=False, server_default=text("false")),
    Column("chunks_total", Integer, nullable=True, comment="Known once reading is done."),
    Column("chunks_sent", Integer, nullable=False, server_default=text("0")),
    Column("chunks_answered", Integer, nullable=False, server_default=text("0")),
    Column("lease_owner", Text, nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("files_purged_at", DateTime(timezone=True), nullable=True),
    PrimaryKeyConstraint("id"),
    CheckConstraint(_in("kind", JOB_KINDS), name="kind"),
    CheckConstraint(_in("status", JOB_STATUSES), name="status"),
    CheckConstraint(_in("stage", JOB_STAGES), name="stage"),
    CheckConstraint("format IN ('csv', 'xlsx')", name="format"),
    CheckConstraint("progress >= 0 AND progress <= 1", name="progress"),
    comment="Import and export jobs; a job is claimed by a worker with a lease (ADR 0014).",
)
# Listing: a user's own jobs, newest first; admins list everything.
Index("ix_jobs_created_by_created_at_id", jobs.c.created_by, jobs.c.created_at, jobs.c.id)
Index("ix_jobs_created_at_id", jobs.c.created_at, jobs.c.id)
# One job per (user, Idempotency-Key).
Index(
    "uq_jobs_created_by_idempotency_key",
    jobs.c.created_by,
    jobs.c.idempotency_key,
    unique=True,
    postgresql_where=jobs.c.idempotency_key.is_not(None),
)
# The sweep: unfinished jobs only (a small set however many jobs ever ran).
Index(
    "ix_jobs_unfinished_lease_until",
    jobs.c.lease_until,
    postgresql_where=text("status IN ('queued', 'running')"),
)
# Retention: finished jobs whose files are still there.
Index(
    "ix_jobs_finished_at_unpurged",
    jobs.c.finished_at,
    postgresql_where=text("finished_at IS NOT NULL AND files_purged_at IS NULL"),
)

job_files = Table(
    "job_files",
    metadata,
    Column("job_id", UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("role", Text, nullable=False, comment="upload | export."),
    Column("part_no", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("job_id", "role", "part_no"),
    CheckConstraint(_in("role", FILE_ROLES), name="role"),
    comment="Files of jobs as ordered parts (an upload as it streamed in, an export).",
)

staged_entries = Table(
    "staged_entries",
    metadata,
    Column("job_id", UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False, comment="Order of the entry in the file, from 0."),
    Column("row_no", Integer, nullable=False, comment="File row (the header is row 1)."),
    Column("dedupe_key", Text, nullable=False, comment="Entries with equal keys are duplicates."),
    Column("column_name", Text, nullable=False, comment="Where a duplicate error points."),
    Column("shown_value", Text, nullable=False, comment="What a duplicate error shows."),
    Column("payload", JSONB, nullable=False, comment="The entry as the chunk command sends it."),
    PrimaryKeyConstraint("job_id", "seq"),
    comment="Parsed entries of an import waiting to be sent; deleted when the job ends. "
    "A chunk is a range of seq: entries are read back in file order.",
)

job_chunks = Table(
    "job_chunks",
    metadata,
    Column("job_id", UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("chunk_no", Integer, nullable=False),
    Column("dry_run", Boolean, nullable=False, comment="A checking chunk (all_or_nothing)."),
    Column("first_seq", Integer, nullable=False),
    Column("last_seq", Integer, nullable=False),
    Column("entries", Integer, nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("answered_at", DateTime(timezone=True), nullable=True),
    Column("rows_ok", Integer, nullable=True),
    Column("rows_unchanged", Integer, nullable=True),
    Column("rows_failed", Integer, nullable=True),
    PrimaryKeyConstraint("job_id", "dry_run", "chunk_no"),
    comment="Chunks sent to results or auth and their answers (applied once per chunk).",
)

job_errors = Table(
    "job_errors",
    metadata,
    Column("job_id", UUID(as_uuid=True), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("seq", BigInteger, Identity(always=True), nullable=False, comment="Order of writing."),
    Column("row_no", Integer, nullable=False, comment="File row (header = 1; 0: whole file)."),
    Column("column_name", Text, nullable=False),
    Column("code", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("value", Text, nullable=False, server_default=text("''")),
    PrimaryKeyConstraint("job_id", "row_no", "seq"),
    comment="Every problem of a job's rows: the errors file (row,column,code,message,value).",
)

kit_tables(metadata, SCHEMA)
