"""Bodies of the notifications API (API.md "Notifications")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from notifier_service.domain.kinds import NotificationKind
from notifier_service.store.notifications import NotificationRow


class NotificationOut(BaseModel):
    """A notification: `{id, kind, title, body, data, created_at, read_at}`."""

    id: uuid.UUID
    kind: NotificationKind
    title: str
    body: str
    data: dict[str, Any] = Field(
        description="Facts for a client: ids, names, and `link` (a frontend route) when "
        "there is one. Never a token."
    )
    created_at: datetime
    read_at: datetime | None

    @classmethod
    def of(cls, row: NotificationRow) -> NotificationOut:
        return cls(
            id=row.id,
            kind=NotificationKind(row.kind),
            title=row.title,
            body=row.body,
            data=row.data,
            created_at=row.created_at,
            read_at=row.read_at,
        )


class NotificationPage(BaseModel):
    """A page of the caller's notifications, newest first, and how many are unread."""

    items: list[NotificationOut]
    next_cursor: str | None
    unread_count: int = Field(ge=0, description="All the caller's unread notifications.")


class PreferencesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: "yes", 0 or "false" are not answers (a lax bool would read them as one).
    email: StrictBool = Field(
        description="False: in-app notifications only (invitations and password resets are "
        "always emailed)."
    )


class PreferencesOut(BaseModel):
    email: bool
