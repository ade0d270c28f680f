"""The events auth publishes: their types and payload schemas (ADR 0001: contracts live
with their producer; consumers import this module).

Pydantic and the kit's event base only, no database or domain imports, so a
consumer can import it cheaply. Each event carries the whole user (state
transfer, not a diff), so a read model upserts it as it is; ``version`` orders
them, because the relay may deliver an older event after a newer one.
:data:`EVENTS` is auth's event catalog: ``make docs`` writes docs/events.md's
auth section and docs/asyncapi/auth.yaml from it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field
from service_kit.messaging.catalog import EventCatalog
from service_kit.messaging.events import Event

PRODUCER = "auth"
USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
USER_INVITED = "user.invited"


class UserData(Event):
    """A user as other services may keep it (never the password hash)."""

    producer = PRODUCER

    id: uuid.UUID = Field(
        description="User id (the `sub` of their access tokens).",
        examples=["0b7c8f0e-58a5-4ad4-9d5b-1f0a3c6e2d11"],
    )
    email: str = Field(
        description="Email address; unique case-insensitively.", examples=["ann.lee@example.edu"]
    )
    full_name: str = Field(description="Name for display.", examples=["Ann Lee"])
    role: str = Field(description="`admin`, `examiner` or `student`.", examples=["student"])
    student_number: str | None = Field(
        description="Students' unique number; null for others.", examples=["S-1001"]
    )
    active: bool = Field(description="False while invited or after deactivation.", examples=[False])
    created_at: datetime = Field(
        description="When the account was created (UTC).",
        examples=["2026-11-22T10:15:30.123456Z"],
    )
    version: int = Field(
        description="Starts at 1 and grows with every change; ignore an event whose version "
        "is not above the one you hold.",
        examples=[1],
    )


class UserCreatedV1(UserData):
    """A user was created (by an admin, an import, or the bootstrap).

    Every payload carries the whole user: upsert it, and apply it only if its
    `version` is above the one you hold (events of one user may arrive out of
    order). Read by results (students read model) and the notifier (users read
    model).
    """

    event_type = USER_CREATED
    event_version = 1


class UserUpdatedV1(UserData):
    """Name, role or active changed, or an invited user took the invitation.

    Every payload carries the whole user: upsert it, and apply it only if its
    `version` is above the one you hold (events of one user may arrive out of
    order). Read by results (students read model) and the notifier (users read
    model).
    """

    event_type = USER_UPDATED
    event_version = 1


class UserInvitedV1(UserData):
    """A user was created without a password and must set one.

    Carries the raw invitation token: the notifier delivers it to the user (a
    link to the password reset page, notification `account_invited`). Treat it
    as a secret: do not log it.

    Every payload carries the whole user: upsert it, and apply it only if its
    `version` is above the one you hold (events of one user may arrive out of
    order).
    """

    event_type = USER_INVITED
    event_version = 1

    token: str = Field(
        description="Single-use invitation token for `POST /auth/password/reset`.",
        examples=["Zq3x...43 url-safe characters..."],
    )
    expires_at: datetime = Field(
        description="When the token stops working (UTC).",
        examples=["2026-11-29T10:15:30.123456Z"],
    )


EVENTS = EventCatalog(
    service=PRODUCER,
    description="auth publishes the life of user accounts: each event carries the whole user.",
    publishes=(UserCreatedV1, UserUpdatedV1, UserInvitedV1),
)
"""Every event auth publishes (it consumes none): the source of its event docs."""
