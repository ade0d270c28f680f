"""The events the notifier reads, as tolerant readers of its own (one model per type, version).

Like results (``results_service.messaging.auth_events``), the notifier does not
import its producers' packages: it declares what it reads of each event, fields
it does not know are ignored, and the ones a producer may leave out have
defaults. ``tests/test_event_readers.py`` parses the producers' own examples
with these readers, so a change on their side that breaks them fails here.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from service_kit.messaging.events import Event

_USER = "0b7c8f0e-58a5-4ad4-9d5b-1f0a3c6e2d11"
_EXAM = "2b9e4c1a-7d3f-4e8a-9b6c-1d2e3f4a5b6c"
_JOB = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"


# -- results --------------------------------------------------------------------------------


class Recipient(BaseModel):
    """A student to tell (results' `Recipient`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    student_id: uuid.UUID = Field(description="auth's user id.", examples=[_USER])


class UpdatedRecipient(Recipient):
    """A student whose published result changed, and how."""

    change: Literal["added", "updated", "removed"] = Field(
        description="What happened to their result.", examples=["updated"]
    )


class _ExamEvent(Event):
    producer = "results"

    exam_id: uuid.UUID = Field(description="The exam.", examples=[_EXAM])
    exam_code: str = Field(description="The exam's code.", examples=["PHYS-2026-S"])
    exam_name: str = Field(description="The exam's name.", examples=["Physics, spring 2026"])
    chunk_no: int = Field(ge=0, description="Number of this chunk.", examples=[0])


class ResultsPublishedV1(_ExamEvent):
    """`results.published` v1: one `results_published` notification per recipient."""

    event_type = "results.published"
    event_version = 1

    recipients: list[Recipient] = Field(
        description="Candidates in this chunk.", examples=[[{"student_id": _USER}]]
    )


class ResultsUpdatedV1(_ExamEvent):
    """`results.updated` v1: one `results_updated` notification per recipient and generation."""

    event_type = "results.updated"
    event_version = 1

    generation: int = Field(ge=1, description="The generation that changed.", examples=[5])
    recipients: list[UpdatedRecipient] = Field(
        description="Students whose result changed.",
        examples=[[{"student_id": _USER, "change": "updated"}]],
    )


# -- bulk -----------------------------------------------------------------------------------


class BulkJobCompletedV1(Event):
    """`bulk.job.completed` v1: `import_finished` or `export_ready` for the job's creator."""

    event_type = "bulk.job.completed"
    event_version = 1
    producer = "bulk"

    job_id: uuid.UUID = Field(description="The job.", examples=[_JOB])
    kind: Literal["marks_import", "users_import", "results_export"] = Field(
        description="What the job did.", examples=["marks_import"]
    )
    status: Literal["succeeded", "completed_with_errors", "failed", "cancelled"] = Field(
        description="How it ended.", examples=["succeeded"]
    )
    created_by: uuid.UUID = Field(description="Who asked for it.", examples=[_USER])
    exam_id: uuid.UUID | None = Field(None, description="The exam, if any.", examples=[_EXAM])
    dry_run: bool = Field(False, description="Nothing applied by design.", examples=[False])
    format: Literal["csv", "xlsx"] = Field("csv", description="The file format.", examples=["csv"])
    rows_total: int | None = Field(None, description="Entries in the file.", examples=[120])
    rows_ok: int = Field(0, description="Entries applied or exported.", examples=[118])
    rows_unchanged: int = Field(0, description="Entries already as stored.", examples=[0])
    rows_failed: int = Field(0, description="Entries with an error.", examples=[2])
    error_code: str | None = Field(None, description="Why it failed.", examples=[None])


# -- auth -----------------------------------------------------------------------------------


class UserChangedV1(Event):
    """What the notifier reads of auth's user events: the users read model's fields."""

    producer = "auth"

    id: uuid.UUID = Field(description="auth's user id.", examples=[_USER])
    email: str = Field(description="Email address.", examples=["ann.lee@example.edu"])
    full_name: str = Field("", description="Name for display.", examples=["Ann Lee"])
    role: str = Field("student", description="admin, examiner or student.", examples=["student"])
    active: bool = Field(description="False while invited or deactivated.", examples=[True])
    version: int = Field(ge=0, description="auth's per-user version.", examples=[1])


class UserCreatedV1(UserChangedV1):
    """`user.created` v1, read into the users read model."""

    event_type = "user.created"
    event_version = 1


class UserUpdatedV1(UserChangedV1):
    """`user.updated` v1, read into the users read model."""

    event_type = "user.updated"
    event_version = 1


class UserInvitedV1(UserChangedV1):
    """`user.invited` v1: the invited user (read model) and the invitation to email."""

    event_type = "user.invited"
    event_version = 1

    token: str = Field(
        repr=False, description="The invitation token (a secret).", examples=["Zq3x..."]
    )
    expires_at: datetime = Field(
        description="When the token stops working.", examples=["2026-12-07T10:00:00Z"]
    )


class PasswordResetRequestedV1(UserChangedV1):
    """`user.password_reset_requested` v1: the user as they are, and the reset link to email."""

    event_type = "user.password_reset_requested"
    event_version = 1

    token: str = Field(repr=False, description="The reset token (a secret).", examples=["Zq3x..."])
    expires_at: datetime = Field(
        description="When the token stops working.", examples=["2026-12-07T10:00:00Z"]
    )
