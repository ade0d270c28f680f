"""The answers to bulk's chunks, as bulk reads them (tolerant readers).

results answers ``marks.import_chunk`` with ``marks.import_chunk_result``,
auth answers ``users.import_chunk`` with ``users.import_chunk_result``; both
have the same shape. bulk reads only what it needs; unknown fields are
ignored. ``tests/e2e/test_chunk_contracts.py`` parses the producers' own
examples with these readers.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field
from service_kit.messaging.events import Event

_JOB = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"


class AnswerRowError(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    row: int = Field(description="File row (header = 1); 0 for the whole chunk.", examples=[3])
    column: str = Field("", description="The column.", examples=["student_number"])
    code: str = Field(description="Detail code.", examples=["STUDENT_NOT_FOUND"])
    message: str = Field("", description="For a person.", examples=["no such student"])
    value: str = Field("", description="The offending value.", examples=["S-1002"])


class ChunkAnswer(Event):
    """What bulk reads of a chunk's answer."""

    job_id: uuid.UUID = Field(description="The job.", examples=[_JOB])
    chunk_no: int = Field(description="The chunk.", examples=[0])
    dry_run: bool = Field(description="The chunk was a dry run.", examples=[False])
    applied: bool = Field(False, description="The valid rows were written.", examples=[True])
    rows_ok: int = Field(ge=0, description="Entries written (or that would be).", examples=[1])
    rows_unchanged: int = Field(ge=0, description="Entries equal to what was stored.", examples=[0])
    rows_failed: int = Field(ge=0, description="Entries with an error.", examples=[1])
    errors: list[AnswerRowError] = Field(description="Every problem, in row order.")


class MarkChunkAnsweredV1(ChunkAnswer):
    """results' `marks.import_chunk_result` v1."""

    event_type = "marks.import_chunk_result"
    event_version = 1
    producer = "results"


class UserChunkAnsweredV1(ChunkAnswer):
    """auth's `users.import_chunk_result` v1."""

    event_type = "users.import_chunk_result"
    event_version = 1
    producer = "auth"
