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

IMPORT_CHUNK_TYPE = "marks.import_chunk"
IMPORT_CHUNK_VERSION = 1
IMPORT_CHUNK_ROUTING_KEY = "results.marks.import_chunk"
"""Routing key of the command: the ``results.`` prefix names its only addressee."""

IMPORT_CHUNK_RESULT_TYPE = "marks.import_chunk_result"
IMPORT_CHUNK_RESULT_VERSION = 1
"""The answer's routing key is its type."""

MAX_CHUNK_ROWS = 5000
"""Rows per chunk at most (the API's batch limit): bigger chunks are dead-lettered."""


class ImportMode(StrEnum):
    PARTIAL = "partial"
    ALL_OR_NOTHING = "all_or_nothing"


class Requester(BaseModel):
    """Who asked for the import; results authorises the chunk as this user."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: uuid.UUID = Field(description="The importing user's id (JWT `sub`).")
    role: Literal["admin", "examiner", "student"] = Field(
        description="Their role when the job was created (JWT `role`)."
    )


class MarkImportRow(BaseModel):
    """One parsed CSV row (one mark entry)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    row: int = Field(ge=1, description="Row number in the file; the header is row 1.")
    student_number: str = Field(description="As in the file, trimmed.")
    subject_code: str = Field(description="As in the file (long shape) or its column (wide).")
    status: str = Field(description="`present`, `absent` (cell `AB`) or `exempt` (cell `EX`).")
    mark: Decimal | None = Field(
        None,
        description='The mark for `present`, as a decimal string (`"79.50"`, decimal point); '
        "null otherwise.",
    )


class MarkImportChunkV1(BaseModel):
    """Data of the ``marks.import_chunk`` v1 command."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    job_id: uuid.UUID = Field(description="The bulk job this chunk belongs to.")
    chunk_no: int = Field(ge=0, description="Number of the chunk in its job, from 0.")
    exam_id: uuid.UUID = Field(description="The exam the marks are for.")
    mode: ImportMode = Field(
        ImportMode.PARTIAL,
        description="`partial`: apply the valid rows, report the bad ones; `all_or_nothing`: "
        "apply no row if any is bad.",
    )
    dry_run: bool = Field(False, description="Validate only; nothing is written.")
    requested_by: Requester = Field(description="Authorisation is checked for this user.")
    reason: str | None = Field(
        None, description="Reason of the change; required (non-empty) once the exam is published."
    )
    rows: list[MarkImportRow] = Field(
        max_length=MAX_CHUNK_ROWS, description="The rows of this chunk, in file order."
    )


class ImportRowError(BaseModel):
    """One problem of one row, as written to the job's error CSV."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    row: int = Field(description="Row number in the file (header = 1); 0 for the whole chunk.")
    column: str = Field(
        description="`student_number`, `subject_code` or `mark` (also for status problems: the "
        "status comes from the mark cell, `AB`/`EX`); empty for the whole row or chunk."
    )
    code: str = Field(
        description="`STUDENT_NOT_FOUND`, `SUBJECT_NOT_FOUND`, `MARK_REQUIRED`, "
        "`MARK_NOT_ALLOWED`, `MARK_OUT_OF_RANGE`, `TOO_MANY_DECIMALS`, `INVALID_STATUS`, "
        "`DUPLICATE_ENTRY`, `NOT_A_NUMBER`; for the whole chunk (row 0): `NOT_FOUND` (no "
        "such exam), `FORBIDDEN` (requester may not write these marks), `EXAM_PUBLISHED`."
    )
    message: str = Field(description="For a person.")
    value: str = Field("", description="The offending value as text.")


class MarkImportChunkResultV1(BaseModel):
    """Data of the ``marks.import_chunk_result`` v1 event (the answer to one chunk)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    job_id: uuid.UUID = Field(description="From the chunk.")
    chunk_no: int = Field(description="From the chunk.")
    exam_id: uuid.UUID = Field(description="From the chunk.")
    dry_run: bool = Field(description="From the chunk: nothing was written.")
    applied: bool = Field(
        description="True when the valid rows were written (false for a dry run, a refused "
        "chunk, or an all_or_nothing chunk with a bad row)."
    )
    rows_ok: int = Field(
        ge=0,
        description="Valid rows that changed a mark (or would have, in a dry run or an "
        "all_or_nothing chunk that was not applied). One row of `rows` is one mark entry.",
    )
    rows_unchanged: int = Field(ge=0, description="Valid rows equal to the stored mark.")
    rows_failed: int = Field(ge=0, description="Rows with at least one error.")
    errors: list[ImportRowError] = Field(description="Every problem, in row order.")
    marks_version: int | None = Field(
        None, description="The exam's marks_version after this chunk, when it changed marks."
    )
