"""auth's user events as results reads them: tolerant readers, one model per (type, version).

ADR 0001 lets a consumer import its producer's contracts; results declares
readers instead, so its image does not install auth's package (argon2 and
the rest) for a few fields, and it reads only what its students read model
needs: fields it does not know are ignored, and the ones auth may leave out
have defaults. A test parses auth's own example payloads with these readers,
so a change on auth's side that breaks them fails in results' suite.
"""

from __future__ import annotations

import uuid

from pydantic import Field
from service_kit.messaging.events import Event


class UserChangedV1(Event):
    """What results reads of auth's user events v1 (`user.created`, `user.updated`)."""

    producer = "auth"

    id: uuid.UUID = Field(
        description="auth's user id.", examples=["0b7c8f0e-58a5-4ad4-9d5b-1f0a3c6e2d11"]
    )
    email: str = Field("", description="Email address.", examples=["ann.lee@example.edu"])
    full_name: str = Field("", description="Name for display.", examples=["Ann Lee"])
    role: str = Field(description="Only `student` is kept.", examples=["student"])
    student_number: str | None = Field(
        None,
        description="The student's number; students without one are not kept.",
        examples=["S-1001"],
    )
    active: bool = Field(description="False while invited or deactivated.", examples=[True])
    version: int = Field(
        ge=0, description="auth's per-user version: orders the events.", examples=[1]
    )


class UserCreatedV1(UserChangedV1):
    """`user.created` v1, read into the students read model."""

    event_type = "user.created"
    event_version = 1


class UserUpdatedV1(UserChangedV1):
    """`user.updated` v1, read into the students read model."""

    event_type = "user.updated"
    event_version = 1
