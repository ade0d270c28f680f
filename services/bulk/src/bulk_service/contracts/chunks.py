"""The chunk commands bulk sends, as bulk writes them.

Their contracts belong to their addressees (results' ``marks.import_chunk``,
auth's ``users.import_chunk``: see their sections of docs/events.md); bulk
declares its own copy so its image does not install theirs.
``tests/e2e/test_chunk_contracts.py`` validates bulk's example payloads with
the addressees' own models, so a drift on either side fails the suite.

Rows are built from staged entries that bulk has already validated, so the
chunk sender uses ``model_construct`` and these models mostly document.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from service_kit.messaging.events import Event

_JOB = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"
_EXAM = "2b9e4c1a-7d3f-4e8a-9b6c-1d2e3f4a5b6c"


class Requester(BaseModel):
    """Who asked for the import; the addressee authorises the chunk as this user."""

    model_config = ConfigDict(frozen=True)

    user_id: uuid.UUID = Field(
        description="The importing user's id.", examples=["0b7c8f0e-58a5-4ad4-9d5b-1f0a3c6e2d11"]
    )
    role: Literal["admin", "examiner", "student"] = Field(
        description="Their role when the job was created.", examples=["examiner"]
    )


class MarkChunkRow(BaseModel):
    """One mark entry of a marks file."""

    model_config = ConfigDict(frozen=True)

    row: int = Field(ge=1, description="Row in the file; the header is row 1.", examples=[2])
    student_number: str = Field(description="Trimmed.", examples=["S-1001"])
    subject_code: str = Field(description="The exam's spelling of the code.", examples=["MATH"])
    status: Literal["present", "absent", "exempt"] = Field(
        description="From the mark cell (`AB`, `EX`).", examples=["present"]
    )
    mark: str | None = Field(
        None,
        description="For `present`: a decimal string with a decimal point, at most two "
        "decimals (results reads it as a Decimal).",
        examples=["79.50"],
    )


class MarkImportChunkV1(Event):
    """bulk's copy of results' `marks.import_chunk` command (results owns the contract)."""

    event_type = "marks.import_chunk"
    event_version = 1
    routing_key = "results.marks.import_chunk"
    producer = "bulk"

    job_id: uuid.UUID = Field(description="The job.", examples=[_JOB])
    chunk_no: int = Field(ge=0, description="From 0.", examples=[0])
    exam_id: uuid.UUID = Field(description="The exam.", examples=[_EXAM])
    mode: Literal["partial", "all_or_nothing"] = Field(
        description="Import mode.", examples=["partial"]
    )
    dry_run: bool = Field(description="Validate only.", examples=[False])
    requested_by: Requester = Field(description="The importer.")
    reason: str | None = Field(None, description="Reason of the change.", examples=[None])
    rows: list[MarkChunkRow] = Field(max_length=5000, description="The entries, in file order.")


class UserChunkRow(BaseModel):
    """One user of a users file."""

    model_config = ConfigDict(frozen=True)

    row: int = Field(ge=1, description="Row in the file; the header is row 1.", examples=[2])
    email: str = Field(description="As in the file, trimmed.", examples=["ann.lee@example.edu"])
    full_name: str = Field(description="Trimmed.", examples=["Ann Lee"])
    role: Literal["admin", "examiner", "student"] = Field(
        description="Lower-cased.", examples=["student"]
    )
    student_number: str | None = Field(description="Students only.", examples=["S-1001"])
    password: str | None = Field(
        None,
        description="Secret: the initial password; absent: the user is invited.",
        examples=[None],
    )


class UserImportChunkV1(Event):
    """bulk's copy of auth's `users.import_chunk` command (auth owns the contract)."""

    event_type = "users.import_chunk"
    event_version = 1
    routing_key = "auth.users.import_chunk"
    producer = "bulk"

    job_id: uuid.UUID = Field(description="The job.", examples=[_JOB])
    chunk_no: int = Field(ge=0, description="From 0.", examples=[0])
    mode: Literal["partial", "all_or_nothing"] = Field(
        description="Import mode.", examples=["partial"]
    )
    dry_run: bool = Field(description="Validate only.", examples=[False])
    requested_by: Requester = Field(description="The importer (an admin).")
    rows: list[UserChunkRow] = Field(max_length=1000, description="The users, in file order.")
