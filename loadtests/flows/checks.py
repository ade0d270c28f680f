"""Checks of response bodies: a 200 with a wrong body is a failure.

A *shape* says what a JSON value must be:

- a type or a tuple of types (``str``, ``(int, float)``; ``bool`` is never an ``int``);
- ``None``: the value must be null;
- a ``Literal`` set: a ``frozenset`` of the allowed values;
- a ``dict``: an object with at least these keys, each with its shape;
- a one-item ``list``: an array whose every item has that shape;
- ``Nullable(shape)``: null or that shape;
- a callable: a predicate (``is_uuid``) that returns True when the value is right.

``problems(value, shape)`` lists what is wrong, each with its JSON path, so a
failure in the report says which field broke.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Nullable:
    shape: Any


def is_uuid(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def is_timestamp(value: Any) -> bool:
    """RFC 3339 in UTC, as every timestamp of the API."""
    return (
        isinstance(value, str)
        and len(value) >= 20
        and value[10] in "Tt"
        and (value.endswith(("Z", "z", "+00:00")))
    )


NUMBER = (int, float)

USER = {
    "id": is_uuid,
    "email": str,
    "full_name": str,
    "role": frozenset({"admin", "examiner", "student"}),
    "student_number": Nullable(str),
    "active": bool,
    "created_at": is_timestamp,
}
TOKENS = {
    "access_token": str,
    "refresh_token": str,
    "token_type": frozenset({"Bearer"}),
    "expires_in": int,
}
SUBJECT_RESULT = {
    "code": str,
    "status": frozenset({"present", "absent", "exempt"}),
    "mark": Nullable(NUMBER),
    "percentage": Nullable(NUMBER),
    "grade": Nullable(str),
    "points": Nullable(NUMBER),
    "passed": Nullable(bool),
}
RESULT = {
    "exam_id": is_uuid,
    "student_number": str,
    "student_name": Nullable(str),
    "status": frozenset({"complete", "incomplete"}),
    "total": Nullable(NUMBER),
    "max_total": Nullable(NUMBER),
    "percentage": Nullable(NUMBER),
    "grade": Nullable(str),
    "gpa": Nullable(NUMBER),
    "passed": Nullable(bool),
    "rank": Nullable(int),
    "generation": int,
    "subjects": [SUBJECT_RESULT],
}
EXAM = {
    "id": is_uuid,
    "code": str,
    "name": str,
    "status": frozenset({"draft", "scheduled", "published"}),
    "publish_at": Nullable(is_timestamp),
    "published_at": Nullable(is_timestamp),
    "subjects": [
        {
            "code": str,
            "name": str,
            "max_mark": NUMBER,
            "pass_mark": NUMBER,
            "credits": NUMBER,
            "examiner_ids": [is_uuid],
        }
    ],
    "grading_scale": [{"grade": str, "min_percent": NUMBER, "points": NUMBER}],
    "pass_percent": NUMBER,
    "rank_method": frozenset({"competition", "dense"}),
    "results_stale": bool,
    "results_generated_at": Nullable(is_timestamp),
    "created_at": is_timestamp,
}
NOTIFICATION = {
    "id": is_uuid,
    "kind": frozenset(
        {
            "results_published",
            "results_updated",
            "import_finished",
            "export_ready",
            "account_invited",
            "password_reset",
        }
    ),
    "title": str,
    "body": str,
    "data": dict,
    "created_at": is_timestamp,
    "read_at": Nullable(is_timestamp),
}
JOB = {
    "id": is_uuid,
    "kind": frozenset({"marks_import", "users_import", "results_export"}),
    "status": frozenset(
        {"queued", "running", "succeeded", "completed_with_errors", "failed", "cancelled"}
    ),
    "dry_run": bool,
    "mode": Nullable(frozenset({"partial", "all_or_nothing"})),
    "format": frozenset({"csv", "xlsx"}),
    "progress": NUMBER,
    "rows_total": Nullable(int),
    "rows_ok": int,
    "rows_unchanged": int,
    "rows_failed": int,
    "created_by": is_uuid,
    "created_at": is_timestamp,
    "started_at": Nullable(is_timestamp),
    "finished_at": Nullable(is_timestamp),
    "error": Nullable({"code": str, "message": str}),
}
GENERATION = {
    "exam_id": is_uuid,
    "generation": int,
    "candidates": int,
    "complete": int,
    "incomplete": int,
    "changed": int,
    "generated_at": Nullable(is_timestamp),
}


def page(item: Any) -> dict[str, Any]:
    """A list answer: ``{"items": [...], "next_cursor": str | null}``."""
    return {"items": [item], "next_cursor": Nullable(str)}


def problems(value: Any, shape: Any, path: str = "$") -> list[str]:
    if shape is None:
        return [] if value is None else [f"{path}: expected null, got {value!r:.60}"]
    if isinstance(shape, Nullable):
        return [] if value is None else problems(value, shape.shape, path)
    if isinstance(shape, frozenset):
        return [] if value in shape else [f"{path}: {value!r:.60} is not one of {sorted(shape)}"]
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return [f"{path}: expected an object, got {type(value).__name__}"]
        found: list[str] = []
        for key, inner in shape.items():
            if key not in value:
                found.append(f"{path}.{key}: missing")
            else:
                found += problems(value[key], inner, f"{path}.{key}")
        return found
    if isinstance(shape, list):
        if not isinstance(value, list):
            return [f"{path}: expected an array, got {type(value).__name__}"]
        found = []
        for i, item in enumerate(value):
            found += problems(item, shape[0], f"{path}[{i}]")
            if len(found) > 5:
                break
        return found
    if isinstance(shape, type | tuple):
        types = shape if isinstance(shape, tuple) else (shape,)
        if isinstance(value, bool) and bool not in types:
            return [f"{path}: expected {_names(types)}, got bool"]
        if isinstance(value, types):
            return []
        return [f"{path}: expected {_names(types)}, got {type(value).__name__}"]
    if callable(shape):
        predicate: Callable[[Any], bool] = shape
        if predicate(value):
            return []
        return [f"{path}: {value!r:.60} fails {getattr(predicate, '__name__', 'the check')}"]
    raise TypeError(f"not a shape: {shape!r}")


def stream_problems(events: list[dict[str, str]]) -> list[str]:
    """What an open stream must have sent: ``retry``, then an ``unread_count``; every
    ``notification`` event a notification with its id."""
    if not events or "retry" not in events[0]:
        return [f"the stream did not open with retry: {events[:1]}"]
    found: list[str] = []
    counts = 0
    for event in events[1:]:
        kind = event.get("event")
        try:
            data = json.loads(event.get("data", ""))
        except ValueError:
            return [f"event {kind} carries no JSON: {event.get('data', '')[:80]!r}"]
        if kind == "unread_count":
            counts += 1
            found += problems(data, {"unread_count": int}, "$unread_count")
        elif kind == "notification":
            found += problems(data, NOTIFICATION, "$notification")
            if not event.get("id", "").isdigit():
                found.append(f"notification event without an id: {event}")
        else:
            found.append(f"unknown event {kind!r}")
    if counts == 0:
        found.append("no unread_count event")
    return found


def _names(types: tuple[type, ...]) -> str:
    return " or ".join(t.__name__ for t in types)
