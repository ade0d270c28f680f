"""Writing auth's events to the outbox (schemas in :mod:`auth_service.contracts`)."""

from __future__ import annotations

import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import orjson
from service_kit.messaging.outbox import add_event
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.contracts import (
    EVENTS,
    PRODUCER,
    USER_CREATED,
    USER_INVITED,
    USER_UPDATED,
    UserCreatedV1,
    UserData,
    UserInvitedV1,
    UserUpdatedV1,
)
from auth_service.domain.users import User
from auth_service.store.tables import SCHEMA

_Payload = TypeVar("_Payload", bound=UserData)


def _payload(model: type[_Payload], user: User, **extra: object) -> _Payload:
    return model.model_validate(
        {
            "id": user.id,
            "email": user.email,
            "full_name": user.full_name,
            "role": user.role.value,
            "student_number": user.student_number,
            "active": user.active,
            "created_at": user.created_at,
            "version": user.version,
            **extra,
        }
    )


async def _add(session: AsyncSession, event_type: str, data: UserData) -> uuid.UUID:
    return await add_event(session, event_type, data, schema=SCHEMA, producer=PRODUCER, version=1)


async def user_created(session: AsyncSession, user: User) -> uuid.UUID:
    return await _add(session, USER_CREATED, _payload(UserCreatedV1, user))


async def user_updated(session: AsyncSession, user: User) -> uuid.UUID:
    return await _add(session, USER_UPDATED, _payload(UserUpdatedV1, user))


async def user_invited(
    session: AsyncSession, user: User, token: str, expires_at: datetime
) -> uuid.UUID:
    payload = _payload(UserInvitedV1, user, token=token, expires_at=expires_at)
    return await _add(session, USER_INVITED, payload)


_TYPE_NAMES = {
    "UUID": "string (uuid)",
    "str": "string",
    "bool": "boolean",
    "int": "integer",
    "datetime": "string (RFC 3339, UTC)",
    "str | None": "string or null",
}

# Who reads each event, for the catalog (consumers own their queues; this is documentation).
CONSUMERS = {
    USER_CREATED: "results (read model of students), notifier (read model of users)",
    USER_UPDATED: "results (read model of students), notifier (read model of users)",
    USER_INVITED: "notifier (delivers the invitation: `account_invited`)",
}

_EXAMPLE_USER = {
    "id": "0b7c8f0e-58a5-4ad4-9d5b-1f0a3c6e2d11",
    "email": "ann.lee@example.edu",
    "full_name": "Ann Lee",
    "role": "student",
    "student_number": "S-1001",
    "active": False,
    "created_at": "2026-11-22T10:15:30.123456Z",
    "version": 1,
}
_EXAMPLE_EXTRA: dict[str, dict[str, object]] = {
    USER_UPDATED: {"active": True, "version": 2},
    USER_INVITED: {
        "token": "Zq3x...43 url-safe characters...",
        "expires_at": "2026-11-29T10:15:30.123456Z",
    },
}

BEGIN_MARKER = "<!-- auth events: begin (generated; do not edit) -->"
END_MARKER = "<!-- auth events: end -->"


def _type_name(annotation: object) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    return _TYPE_NAMES.get(text, text)


def events_markdown() -> str:
    """auth's entries of the docs/events.md catalog, generated so they cannot drift."""
    lines = [
        BEGIN_MARKER,
        "<!-- Regenerate: uv run python -m auth_service.messaging.events --write -->",
        "",
    ]
    for event_type, version, model in EVENTS:
        summary, _, rest = (model.__doc__ or "").strip().partition("\n\n")
        summary = summary.split(": ", 1)[-1]
        example = orjson.dumps(
            {**_EXAMPLE_USER, **_EXAMPLE_EXTRA.get(event_type, {})}, option=orjson.OPT_INDENT_2
        ).decode()
        lines += [f"### `{event_type}` v{version}", "", summary[:1].upper() + summary[1:]]
        if rest:
            lines += ["", " ".join(part.strip() for part in rest.splitlines())]
        lines += [
            "",
            f"- Routing key: `{event_type}`; producer: `{PRODUCER}`",
            f"- Consumers: {CONSUMERS[event_type]}",
            f"- Payload model: `auth_service.contracts.{model.__name__}`",
            "- Every payload carries the whole user: upsert it, and apply it only if its "
            "`version` is above the one you hold (events of one user may arrive out of order).",
            "",
            "| field | type | meaning |",
            "|---|---|---|",
        ]
        for name, field in model.model_fields.items():
            lines.append(f"| `{name}` | {_type_name(field.annotation)} | {field.description} |")
        lines += ["", "Example `data`:", "", "```json", example, "```", ""]
    lines.append(END_MARKER)
    return "\n".join(lines) + "\n"


def write_into(path: Path) -> None:
    """Puts the generated entries into ``path``: replacing the earlier ones, else appending."""
    text = path.read_text() if path.exists() else ""
    section = events_markdown()
    if BEGIN_MARKER in text and END_MARKER in text:
        head, _, rest = text.partition(BEGIN_MARKER)
        _, _, tail = rest.partition(END_MARKER + "\n")
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    docs = Path(__file__).resolve().parents[5] / "docs" / "events.md"
    if "--write" in sys.argv:
        write_into(docs)
        print(f"updated {docs}")
    else:
        print(events_markdown(), end="")
