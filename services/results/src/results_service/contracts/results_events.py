"""``results.published`` and ``results.updated``: who must be told about their result.

Both are written to results' outbox in the transaction that made them true
(the publication, or the regeneration that changed rows of a published exam),
with the recipients split into chunks of at most :data:`RECIPIENTS_PER_CHUNK`,
one event per chunk, so no message grows with the size of the exam. A
consumer treats each chunk on its own; ``(exam_id, cause, chunk_no)`` — with
``generation`` for updates — names a chunk for idempotency across
re-deliveries, and the envelope's message id is unique per chunk.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RESULTS_PUBLISHED_TYPE = "results.published"
RESULTS_PUBLISHED_VERSION = 1
RESULTS_UPDATED_TYPE = "results.updated"
RESULTS_UPDATED_VERSION = 1

RECIPIENTS_PER_CHUNK = 500
"""Recipients per event at most."""


class Recipient(BaseModel):
    """A student to notify."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    student_id: uuid.UUID = Field(description="auth's user id of the student.")
    student_number: str = Field(description="The student's number.")


class UpdatedRecipient(Recipient):
    """A student whose published result row changed."""

    change: Literal["added", "updated", "removed"] = Field(
        description="`added`: the student has a result now (first entry after publication); "
        "`updated`: a value of their result changed (a mark, or their rank after someone "
        "else's correction); `removed`: they are no longer a candidate (every entry deleted)."
    )


class ResultsPublishedV1(BaseModel):
    """Data of ``results.published`` v1 (routing key ``results.published``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    exam_id: uuid.UUID = Field(description="The exam that was published.")
    exam_code: str = Field(description="The exam's code, for the notification text.")
    exam_name: str = Field(description="The exam's name, for the notification text.")
    published_at: datetime = Field(description="When the exam became published (UTC).")
    generation: int = Field(ge=0, description="Generation of the results that were published.")
    chunk_no: int = Field(ge=0, description="Number of this chunk, from 0.")
    chunk_count: int = Field(ge=1, description="How many chunks this publication has.")
    recipients: list[Recipient] = Field(
        max_length=RECIPIENTS_PER_CHUNK,
        description="Candidates of the exam in this chunk (ordered by student_number).",
    )


class ResultsUpdatedV1(BaseModel):
    """Data of ``results.updated`` v1 (routing key ``results.updated``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    exam_id: uuid.UUID = Field(description="The published exam whose results changed.")
    exam_code: str = Field(description="The exam's code, for the notification text.")
    exam_name: str = Field(description="The exam's name, for the notification text.")
    generation: int = Field(ge=1, description="The generation that changed these rows.")
    chunk_no: int = Field(ge=0, description="Number of this chunk, from 0.")
    chunk_count: int = Field(ge=1, description="How many chunks this generation has.")
    recipients: list[UpdatedRecipient] = Field(
        max_length=RECIPIENTS_PER_CHUNK,
        description="Exactly the students whose result row this generation changed.",
    )
