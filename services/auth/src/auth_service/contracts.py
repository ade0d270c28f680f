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
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from service_kit.messaging.catalog import EventCatalog, Subscription
from service_kit.messaging.events import Event
from service_kit.messaging.topology import QueueSpec

PRODUCER = "auth"
USER_CREATED = "user.created"
USER_UPDATED = "user.updated"
USER_INVITED = "user.invited"
USER_PASSWORD_RESET_REQUESTED = "user.password_reset_requested"


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


class UserPasswordResetRequestedV1(UserData):
    """Somebody asked for a password reset of this active or invited user.

    Carries the raw reset token: the notifier delivers it to the user (a link to
    the password reset page, notification `password_reset`). Treat it as a
    secret: do not log it. Only for an existing account that is active or
    invited, never for an unknown address or a deactivated user; a newer
    request voids the token of an older one, so only the newest link works.

    A request changes nothing of the user: the payload is the whole user as
    it is, with its current `version` (a read model ignores it as not newer).
    """

    event_type = USER_PASSWORD_RESET_REQUESTED
    event_version = 1

    token: str = Field(
        description="Single-use reset token for `POST /auth/password/reset`.",
        examples=["Zq3x...43 url-safe characters..."],
    )
    expires_at: datetime = Field(
        description="When the token stops working (UTC), `PASSWORD_RESET_TTL_SECONDS` after "
        "the request.",
        examples=["2026-11-22T11:15:30.123456Z"],
    )


# -- bulk's users import ------------------------------------------------------------------

_JOB = "6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b"
MAX_IMPORT_CHUNK_ROWS = 1000
"""Rows per users.import_chunk at most: a bigger chunk is dead-lettered."""


class ImportRequester(BaseModel):
    """Who asked for the import; only an admin may import users."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: uuid.UUID = Field(
        description="The importing user's id.", examples=["0b7c8f0e-58a5-4ad4-9d5b-1f0a3c6e2d11"]
    )
    role: Literal["admin", "examiner", "student"] = Field(
        description="Their role when the job was created; auth also checks the user is an "
        "active admin now.",
        examples=["admin"],
    )


class UserImportRow(BaseModel):
    """One row of a users file, as bulk parsed it."""

    # A row that fails the model must not quote its input (it may hold a password)
    # in the error the consumer logs when it dead-letters the chunk.
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    row: int = Field(ge=1, description="Row in the file; the header is row 1.", examples=[2])
    email: str = Field(description="As in the file, trimmed.", examples=["ann.lee@example.edu"])
    full_name: str = Field(description="Trimmed.", examples=["Ann Lee"])
    role: str = Field(description="`admin`, `examiner` or `student`.", examples=["student"])
    student_number: str | None = Field(
        None,
        description="Students only. An existing user's number is never changed by an import "
        "(results keys marks by it): a different one fails the row.",
        examples=["S-1001"],
    )
    password: str | None = Field(
        None,
        description="SECRET: the initial password (10 to 1024 characters) of a new user; "
        "absent or null: the user is invited (`user.invited`). Ignored for an existing user, "
        "whose password an import never changes (a re-run must not reset passwords set "
        "since). Never logged, never echoed in an error (its value is empty).",
        examples=[None],
    )


class UserImportChunkV1(Event):
    """A command: create or update these users (a chunk of a bulk users import).

    Sent by bulk to its only addressee, auth. Applied once per `(job_id,
    chunk_no)`: a chunk sent again is answered again with the stored answer.
    Rows are idempotent on the email (its canonical form): an unknown email
    creates the user (invited when no password is given), a known one updates
    its name and role where they differ (never its password or student
    number); a row equal to the stored user is unchanged. Duplicate emails,
    or student numbers, in the chunk fail every row involved. `partial`
    applies the valid rows; `all_or_nothing` none if any row is bad (a chunk
    is auth's unit of atomicity); `dry_run` validates only. The requester must
    be an active admin, else the chunk is refused as a whole (row 0). Over
    1000 rows, or a payload that fails the model: dead-lettered (the logged
    error quotes no input). Carries passwords: never log it.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    event_type = "users.import_chunk"
    event_version = 1
    routing_key = "auth.users.import_chunk"
    producer = "bulk"

    job_id: uuid.UUID = Field(description="The bulk job.", examples=[_JOB])
    chunk_no: int = Field(ge=0, description="Number of the chunk in its job.", examples=[0])
    mode: Literal["partial", "all_or_nothing"] = Field(
        "partial", description="Import mode.", examples=["partial"]
    )
    dry_run: bool = Field(False, description="Validate only.", examples=[False])
    requested_by: ImportRequester = Field(description="The importer.")
    rows: list[UserImportRow] = Field(
        max_length=MAX_IMPORT_CHUNK_ROWS, description="The rows, in file order."
    )


class ImportRowError(BaseModel):
    """One problem of one row (never a password)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    row: int = Field(description="File row (header = 1); 0 for the whole chunk.", examples=[3])
    column: str = Field(description="The column; empty for the whole row.", examples=["email"])
    code: str = Field(
        description="`EMAIL_INVALID`, `INVALID_ROLE`, `REQUIRED`, `TOO_LONG`, `NOT_ALLOWED` "
        "(student number of an existing user), `PASSWORD_TOO_SHORT`, `PASSWORD_TOO_LONG`, "
        "`ROLE_CHANGE_NOT_ALLOWED`, `CONFLICT` (the requester demoting themself), "
        "`STUDENT_NUMBER_TAKEN`, `DUPLICATE_ENTRY`; row 0: `FORBIDDEN`.",
        examples=["EMAIL_INVALID"],
    )
    message: str = Field(description="For a person.", examples=["not an email address"])
    value: str = Field("", description="The offending value (never a password).", examples=["x"])


class UserImportChunkResultV1(Event):
    """The answer to one `users.import_chunk`, written with the chunk's changes.

    Written to the outbox in the transaction that applied the chunk; a chunk
    sent again is answered again with the stored answer. A chunk refused as a
    whole (requester not an active admin) has one error on row 0 and every
    row failed. Holds no password (a password error's value is empty). Treat
    answers idempotently per `(job_id, chunk_no)`. Read by bulk.
    """

    event_type = "users.import_chunk_result"
    event_version = 1
    producer = PRODUCER

    job_id: uuid.UUID = Field(description="From the chunk.", examples=[_JOB])
    chunk_no: int = Field(description="From the chunk.", examples=[0])
    dry_run: bool = Field(description="From the chunk.", examples=[False])
    applied: bool = Field(description="The valid rows were written.", examples=[True])
    rows_ok: int = Field(
        ge=0,
        description="Valid rows that created or changed a user (or would have, in a dry run "
        "or an all_or_nothing chunk that was not applied).",
        examples=[1],
    )
    rows_unchanged: int = Field(ge=0, description="Rows equal to the stored user.", examples=[0])
    rows_failed: int = Field(ge=0, description="Rows with an error.", examples=[1])
    errors: list[ImportRowError] = Field(description="Every problem, in row order.")


USER_IMPORT_QUEUE = QueueSpec("auth.user-import-chunks", (UserImportChunkV1.routing_key,))

EVENTS = EventCatalog(
    service=PRODUCER,
    description="auth publishes the life of user accounts (each event carries the whole "
    "user), the tokens with which users set passwords, and answers bulk's users import "
    "chunks.",
    publishes=(
        UserCreatedV1,
        UserUpdatedV1,
        UserInvitedV1,
        UserPasswordResetRequestedV1,
        UserImportChunkResultV1,
    ),
    defines=(UserImportChunkV1,),
    consumes=(Subscription(USER_IMPORT_QUEUE, (UserImportChunkV1,)),),
)
"""Every event auth publishes or reads: the source of its event docs."""
