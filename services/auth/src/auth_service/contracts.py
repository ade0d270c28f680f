"""The events auth publishes: their types and payload schemas (ADR 0001: contracts live
with their producer; consumers import this module).

Pydantic only, no database or domain imports, so a consumer can import it
cheaply. Each event carries the whole user (state transfer, not a diff), so a
read model upserts it as it is; ``version`` orders them, because the relay may
deliver an older event after a newer one. docs/events.md's auth section is
generated from these models (:func:`auth_service.messaging.events.events_markdown`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

PRODUCER = "auth"
USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
USER_INVITED = "user.invited"


class UserData(BaseModel):
    """A user as other services may keep it (never the password hash)."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(description="User id (the `sub` of their access tokens).")
    email: str = Field(description="Email address; unique case-insensitively.")
    full_name: str = Field(description="Name for display.")
    role: str = Field(description="`admin`, `examiner` or `student`.")
    student_number: str | None = Field(description="Students' unique number; null for others.")
    active: bool = Field(description="False while invited or after deactivation.")
    created_at: datetime = Field(description="When the account was created (UTC).")
    version: int = Field(
        description="Starts at 1 and grows with every change; ignore an event whose version "
        "is not above the one you hold."
    )


class UserCreatedV1(UserData):
    """`user.created` v1: a user was created (by an admin, an import, or the bootstrap)."""


class UserUpdatedV1(UserData):
    """`user.updated` v1: name, role or active changed, or an invited user took the invitation."""


class UserInvitedV1(UserData):
    """`user.invited` v1: a user was created without a password and must set one.

    Carries the raw invitation token: the notifier delivers it to the user (a
    link to the password reset page). Treat it as a secret: do not log it.
    """

    token: str = Field(description="Single-use invitation token for `POST /auth/password/reset`.")
    expires_at: datetime = Field(description="When the token stops working (UTC).")


# (type, schema version, payload model): every event auth publishes.
EVENTS: tuple[tuple[str, int, type[UserData]], ...] = (
    (USER_CREATED, 1, UserCreatedV1),
    (USER_UPDATED, 1, UserUpdatedV1),
    (USER_INVITED, 1, UserInvitedV1),
)
