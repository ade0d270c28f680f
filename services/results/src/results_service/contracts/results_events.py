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
from service_kit.messaging.events import Event

RECIPIENTS_PER_CHUNK = 500
"""Recipients per event at most."""

_EXAM = "2b9e4c1a-7d3f-4e8a-9b6c-1d2e3f4a5b6c"


class Recipient(BaseModel):
    """A student to notify."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    student_id: uuid.UUID = Field(
        description="auth's user id of the student.",
        examples=["0b7c8f0e-58a5-4ad4-9d5b-1f0a3c6e2d11"],
    )
    student_number: str = Field(description="The student's number.", examples=["S-1001"])


class UpdatedRecipient(Recipient):
    """A student whose published result row changed."""

    change: Literal["added", "updated", "removed"] = Field(
        description="`added`: the student has a result now (first entry after publication); "
        "`updated`: a value of their result changed (a mark, or their rank after someone "
        "else's correction); `removed`: they are no longer a candidate (every entry deleted).",
        examples=["updated"],
    )


class ResultsPublishedV1(Event):
    """An exam's results were published (now, or by the scheduler at `publish_at`).

    Written in the transaction that set the exam `published`, so it exists if
    and only if the publication committed; a scheduled exam is published once
    across replicas. Every candidate (every student with a result row) is a
    recipient, in chunks of at most 500 ordered by student_number: one event
    per chunk, `chunk_no` from 0 to `chunk_count - 1`. Treat each chunk on its
    own; `(exam_id, chunk_no)` names a chunk (a publication happens once per
    exam). Read by the notifier (one `results_published` notification per
    student).
    """

    event_type = "results.published"
    event_version = 1
    producer = "results"

    exam_id: uuid.UUID = Field(description="The exam that was published.", examples=[_EXAM])
    exam_code: str = Field(
        description="The exam's code, for the notification text.", examples=["PHYS-2026-S"]
    )
    exam_name: str = Field(
        description="The exam's name, for the notification text.",
        examples=["Physics, spring 2026"],
    )
    published_at: datetime = Field(
        description="When the exam became published (UTC).",
        examples=["2026-11-22T10:15:30.123456Z"],
    )
    generation: int = Field(
        ge=0, description="Generation of the results that were published.", examples=[4]
    )
    chunk_no: int = Field(ge=0, description="Number of this chunk, from 0.", examples=[0])
    chunk_count: int = Field(
        ge=1, description="How many chunks this publication has.", examples=[1]
    )
    recipients: list[Recipient] = Field(
        max_length=RECIPIENTS_PER_CHUNK,
        description="Candidates of the exam in this chunk (ordered by student_number).",
    )


class ResultsUpdatedV1(Event):
    """A regeneration of a published exam changed some results.

    Written in the transaction of the generation that changed the rows (after
    marks were corrected), for exactly the students whose result row it
    inserted, changed or deleted: a student whose rank moved because of
    someone else's correction is one; a student whose values are all unchanged
    is not. A generation that changes nothing writes nothing. Same chunking as
    `results.published`; `(exam_id, generation, chunk_no)` names a chunk. Read
    by the notifier (one `results_updated` notification per student and
    generation).
    """

    event_type = "results.updated"
    event_version = 1
    producer = "results"

    exam_id: uuid.UUID = Field(
        description="The published exam whose results changed.", examples=[_EXAM]
    )
    exam_code: str = Field(
        description="The exam's code, for the notification text.", examples=["PHYS-2026-S"]
    )
    exam_name: str = Field(
        description="The exam's name, for the notification text.",
        examples=["Physics, spring 2026"],
    )
    generation: int = Field(
        ge=1, description="The generation that changed these rows.", examples=[5]
    )
    chunk_no: int = Field(ge=0, description="Number of this chunk, from 0.", examples=[0])
    chunk_count: int = Field(ge=1, description="How many chunks this generation has.", examples=[1])
    recipients: list[UpdatedRecipient] = Field(
        max_length=RECIPIENTS_PER_CHUNK,
        description="Exactly the students whose result row this generation changed.",
    )
