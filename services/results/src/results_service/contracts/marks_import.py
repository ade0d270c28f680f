"""Bulk mark import: the chunk command bulk sends and the answer results publishes.

Flow (DESIGN.md flow 3): bulk parses and validates a CSV as a stream and sends
its rows in chunks as ``marks.import_chunk`` commands (routing key
:data:`IMPORT_CHUNK_ROUTING_KEY`) through its outbox. results applies each
chunk with the same validation and upsert as ``PUT /exams/{id}/marks`` (audit
source ``import``) and answers with one ``marks.import_chunk_result`` event
per chunk through its outbox.

Idempotency: a chunk is applied once per ``(job_id, chunk_no)``; a chunk sent
again (new message id, same job and number) is not applied twice and is
answered again with the stored result, so bulk may re-send a chunk whose
answer it never saw and must itself treat answers idempotently per
``(job_id, chunk_no)``.

Mode semantics are API.md "Bulk jobs": ``partial`` applies the valid rows and
reports the bad ones; ``all_or_nothing`` applies nothing when any row is bad;
``dry_run`` validates and applies nothing. A chunk is the unit of atomicity
in results: an all-or-nothing job must be sent as a single chunk, or bulk
validates every chunk with ``dry_run`` first and then sends them for real.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from service_kit.messaging.events import Event

MAX_CHUNK_ROWS = 5000
"""Rows per chunk at most (the API's batch limit): bigger chunks are dead-lettered."""

_JOB = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"
_EXAM = "2b9e4c1a-7d3f-4e8a-9b6c-1d2e3f4a5b6c"


class ImportMode(StrEnum):
    PARTIAL = "partial"
    ALL_OR_NOTHING = "all_or_nothing"


class Requester(BaseModel):
    """Who asked for the import; results authorises the chunk as this user."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: uuid.UUID = Field(
        description="The importing user's id (JWT `sub`).",
        examples=["0b7c8f0e-58a5-4ad4-9d5b-1f0a3c6e2d11"],
    )
    role: Literal["admin", "examiner", "student"] = Field(
        description="Their role when the job was created (JWT `role`).", examples=["examiner"]
    )


class MarkImportRow(BaseModel):
    """One parsed CSV row (one mark entry)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    row: int = Field(ge=1, description="Row number in the file; the header is row 1.", examples=[2])
    student_number: str = Field(description="As in the file, trimmed.", examples=["S-1001"])
    subject_code: str = Field(
        description="As in the file (long shape) or its column (wide).", examples=["MATH"]
    )
    status: str = Field(
        description="`present`, `absent` (cell `AB`) or `exempt` (cell `EX`).",
        examples=["present"],
    )
    mark: Decimal | None = Field(
        None,
        description='The mark for `present`, as a decimal string (`"79.50"`, decimal point); '
        "null otherwise.",
        examples=["79.50"],
    )


class MarkImportChunkV1(Event):
    """A command: apply these parsed CSV rows of a marks import job.

    Sent by bulk to its only addressee, results (hence the routing key).
    Applied with the same validation and upsert as `PUT /exams/{id}/marks`
    (audit source `import`), once per `(job_id, chunk_no)`: a chunk sent again
    is not applied twice, and is answered again with the stored answer.
    `partial` applies the valid rows; `all_or_nothing` applies none if any row
    is bad (a chunk is results' unit of atomicity: send an all-or-nothing job
    as one chunk, or dry-run every chunk first); `dry_run` validates only.
    Duplicate (student, subject) pairs are detected within a chunk; bulk
    detects them across chunks. Over 5000 rows, or a payload that fails the
    model: dead-lettered. Marks are decimal strings (`"79.50"`).
    """

    event_type = "marks.import_chunk"
    event_version = 1
    routing_key = "results.marks.import_chunk"
    producer = "bulk"

    job_id: uuid.UUID = Field(description="The bulk job this chunk belongs to.", examples=[_JOB])
    chunk_no: int = Field(ge=0, description="Number of the chunk in its job, from 0.", examples=[0])
    exam_id: uuid.UUID = Field(description="The exam the marks are for.", examples=[_EXAM])
    mode: ImportMode = Field(
        ImportMode.PARTIAL,
        description="`partial`: apply the valid rows, report the bad ones; `all_or_nothing`: "
        "apply no row if any is bad.",
        examples=["partial"],
    )
    dry_run: bool = Field(False, description="Validate only; nothing is written.", examples=[False])
    requested_by: Requester = Field(description="Authorisation is checked for this user.")
    reason: str | None = Field(
        None,
        description="Reason of the change; required (non-empty) once the exam is published.",
        examples=[None],
    )
    rows: list[MarkImportRow] = Field(
        max_length=MAX_CHUNK_ROWS, description="The rows of this chunk, in file order."
    )


class ImportRowError(BaseModel):
    """One problem of one row, as written to the job's error CSV."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    row: int = Field(
        description="Row number in the file (header = 1); 0 for the whole chunk.", examples=[3]
    )
    column: str = Field(
        description="`student_number`, `subject_code` or `mark` (also for status problems: the "
        "status comes from the mark cell, `AB`/`EX`); empty for the whole row or chunk.",
        examples=["student_number"],
    )
    code: str = Field(
        description="`STUDENT_NOT_FOUND`, `SUBJECT_NOT_FOUND`, `MARK_REQUIRED`, "
        "`MARK_NOT_ALLOWED`, `MARK_OUT_OF_RANGE`, `TOO_MANY_DECIMALS`, `INVALID_STATUS`, "
        "`DUPLICATE_ENTRY`, `NOT_A_NUMBER`; for the whole chunk (row 0): `NOT_FOUND` (no "
        "such exam), `FORBIDDEN` (requester may not write these marks), `EXAM_PUBLISHED`.",
        examples=["STUDENT_NOT_FOUND"],
    )
    message: str = Field(
        description="For a person.", examples=["no student has the number 'S-1002'"]
    )
    value: str = Field("", description="The offending value as text.", examples=["S-1002"])


class MarkImportChunkResultV1(Event):
    """The answer to one `marks.import_chunk`.

    Written to the outbox in the transaction that applied the chunk. Counts
    are per row of the chunk. A chunk refused as a whole (no such exam,
    requester not allowed, exam published without a reason) is answered with
    one error on row 0 and every row failed. Treat answers idempotently per
    `(job_id, chunk_no)`. Read by bulk (job progress, error CSV).
    """

    event_type = "marks.import_chunk_result"
    event_version = 1
    producer = "results"

    job_id: uuid.UUID = Field(description="From the chunk.", examples=[_JOB])
    chunk_no: int = Field(description="From the chunk.", examples=[0])
    exam_id: uuid.UUID = Field(description="From the chunk.", examples=[_EXAM])
    dry_run: bool = Field(description="From the chunk: nothing was written.", examples=[False])
    applied: bool = Field(
        description="True when the valid rows were written (false for a dry run, a refused "
        "chunk, or an all_or_nothing chunk with a bad row).",
        examples=[True],
    )
    rows_ok: int = Field(
        ge=0,
        description="Valid rows that changed a mark (or would have, in a dry run or an "
        "all_or_nothing chunk that was not applied). One row of `rows` is one mark entry.",
        examples=[1],
    )
    rows_unchanged: int = Field(
        ge=0, description="Valid rows equal to the stored mark.", examples=[0]
    )
    rows_failed: int = Field(ge=0, description="Rows with at least one error.", examples=[1])
    errors: list[ImportRowError] = Field(description="Every problem, in row order.")
    marks_version: int | None = Field(
        None,
        description="The exam's marks_version after this chunk, when it changed marks.",
        examples=[8],
    )


IMPORT_CHUNK_TYPE = MarkImportChunkV1.event_type
IMPORT_CHUNK_ROUTING_KEY = MarkImportChunkV1.routing_key
"""Routing key of the command: the ``results.`` prefix names its only addressee."""
IMPORT_CHUNK_RESULT_TYPE = MarkImportChunkResultV1.event_type
"""The answer's routing key is its type."""
