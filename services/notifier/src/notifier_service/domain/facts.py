"""The facts of each kind of notification: what the texts are written from.

A consumer fills them from the event and the read models. They are stored
with the notification (``notifications.facts``) so that an email can be
rendered again at delivery time, by any replica, after any retry; a token
(invitation, reset) is never stored: :func:`stored_facts` leaves it out and
:func:`facts_from_stored` puts back the one the delivery message carries.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from notifier_service.domain.kinds import NotificationKind, carries_token

JobStatus = Literal["succeeded", "completed_with_errors", "failed", "cancelled"]
DataValue = str | int | bool | None
"""A value of a notification's `data` (API.md): JSON scalars only."""


@dataclass(frozen=True, slots=True)
class ResultsPublished:
    """An exam's results were published; told to each candidate."""

    recipient_name: str
    exam_id: uuid.UUID
    exam_code: str
    exam_name: str


@dataclass(frozen=True, slots=True)
class ResultsUpdated:
    """A published result of the recipient changed (results' `UpdatedRecipient.change`)."""

    recipient_name: str
    exam_id: uuid.UUID
    exam_code: str
    exam_name: str
    change: Literal["added", "updated", "removed"]


@dataclass(frozen=True, slots=True)
class ImportFinished:
    """A marks or users import ended (bulk's `bulk.job.completed`); told to its creator."""

    recipient_name: str
    job_id: uuid.UUID
    job_kind: Literal["marks_import", "users_import"]
    status: JobStatus
    dry_run: bool
    rows_total: int | None
    rows_ok: int
    rows_unchanged: int
    rows_failed: int
    error_code: str | None = None
    exam_name: str | None = None
    """The exam of a marks import, when the notifier knows its name."""


@dataclass(frozen=True, slots=True)
class ExportReady:
    """A results export succeeded; told to its creator."""

    recipient_name: str
    job_id: uuid.UUID
    file_format: Literal["csv", "xlsx"]
    rows: int
    exam_name: str | None = None


@dataclass(frozen=True, slots=True)
class AccountInvited:
    """A user was created without a password (auth's `user.invited`)."""

    recipient_name: str
    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class PasswordReset:
    """A user asked for a password reset (auth's `user.password_reset_requested`)."""

    recipient_name: str
    token: str
    expires_at: datetime


Facts = (
    ResultsPublished
    | ResultsUpdated
    | ImportFinished
    | ExportReady
    | AccountInvited
    | PasswordReset
)

_FACTS_OF: dict[NotificationKind, type[Facts]] = {
    NotificationKind.RESULTS_PUBLISHED: ResultsPublished,
    NotificationKind.RESULTS_UPDATED: ResultsUpdated,
    NotificationKind.IMPORT_FINISHED: ImportFinished,
    NotificationKind.EXPORT_READY: ExportReady,
    NotificationKind.ACCOUNT_INVITED: AccountInvited,
    NotificationKind.PASSWORD_RESET: PasswordReset,
}


StoredFacts = dict[str, Any]
"""JSON of a notification's facts, without the recipient's name and without a token."""

_NOT_STORED = ("recipient_name", "token")


def stored_facts(facts: Facts) -> StoredFacts:
    """The JSON that is stored: ids and dates as strings; no name (it is the user's
    current one at delivery), no token."""
    stored: StoredFacts = {}
    for item in dataclasses.fields(facts):
        if item.name in _NOT_STORED:
            continue
        value = getattr(facts, item.name)
        if isinstance(value, uuid.UUID | datetime):
            value = value.isoformat() if isinstance(value, datetime) else str(value)
        stored[item.name] = value
    return stored


def facts_from_stored(
    kind: NotificationKind, stored: StoredFacts, *, recipient_name: str, token: str | None
) -> Facts:
    """The facts back from :func:`stored_facts`, with the recipient's name and, for a kind
    that carries one, the token (ValueError if it is missing or not expected)."""
    model = _FACTS_OF[kind]
    if carries_token(kind) != (token is not None):
        raise ValueError(f"{kind} {'needs' if carries_token(kind) else 'takes no'} token")
    values: dict[str, Any] = {"recipient_name": recipient_name}
    if token is not None:
        values["token"] = token
    for item in dataclasses.fields(model):
        if item.name in _NOT_STORED or item.name not in stored:
            continue
        value = stored[item.name]
        if value is not None and item.type in ("uuid.UUID", "uuid.UUID | None"):
            value = uuid.UUID(value)
        elif value is not None and item.type == "datetime":
            value = datetime.fromisoformat(value)
        values[item.name] = value
    return model(**values)
