"""auth's internal student lookup: who is behind a student number the read model lacks.

The read model follows ``user.created`` with a lag; a student created a
moment ago must still be usable (DESIGN.md flow 2), so numbers missing locally
are asked of auth (``POST {AUTH_URL}/internal/students/lookup``) before they
are called unknown. Numbers go in batches of ``AUTH_LOOKUP_BATCH_SIZE``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from service_kit.context import REQUEST_ID_HEADER, current_request_id
from service_kit.errors import UpstreamUnavailable
from service_kit.messaging.failures import TransientError

from results_service.store.students import StudentRecord

log = logging.getLogger(__name__)

LOOKUP_PATH = "/internal/students/lookup"


class StudentLookupUnavailable(UpstreamUnavailable, TransientError):
    """auth could not be asked: an HTTP caller gets 503, a consumer retries later.

    Saying "unknown student" without asking would refuse a real student.
    """


class StudentLookup(Protocol):
    async def lookup(self, numbers: Sequence[str]) -> list[StudentRecord]: ...


class _AuthUser(BaseModel):
    """The fields of auth's user (``UserData``) this service keeps."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    email: str = ""
    full_name: str = ""
    role: str
    student_number: str | None = None
    active: bool = True
    # auth's per-user version, when the answer carries it. Without it the
    # lookup's state is held at version 0: the user's events (version >= 1)
    # still apply over it, so the read model converges on the newest event.
    version: int = 0


def _users_of(body: Any) -> list[Any]:
    """The user list of a lookup answer, ``{"items": [user, ...]}``."""
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ValueError("the lookup answer holds no list of users")
    return items


def student_records(body: Any) -> list[StudentRecord]:
    """Students of a lookup answer (other roles and users without a number are dropped)."""
    records = []
    for raw in _users_of(body):
        user = _AuthUser.model_validate(raw)
        if user.role != "student" or not user.student_number:
            continue
        records.append(
            StudentRecord(
                user_id=user.id,
                student_number=user.student_number,
                full_name=user.full_name,
                email=user.email,
                active=user.active,
                version=user.version,
            )
        )
    return records


class AuthStudentLookup:
    """:class:`StudentLookup` over HTTP; share one per process (it pools connections)."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, *, batch_size: int) -> None:
        self._client = client
        self._url = base_url.rstrip("/") + LOOKUP_PATH
        self._batch_size = batch_size

    async def lookup(self, numbers: Sequence[str]) -> list[StudentRecord]:
        batches = [
            list(numbers[i : i + self._batch_size])
            for i in range(0, len(numbers), self._batch_size)
        ]
        answers = await asyncio.gather(*(self._lookup_batch(b) for b in batches))
        return [record for answer in answers for record in answer]

    async def _lookup_batch(self, numbers: list[str]) -> list[StudentRecord]:
        headers = {}
        request_id = current_request_id()
        if request_id != "-":
            headers[REQUEST_ID_HEADER] = request_id
        try:
            response = await self._client.post(
                self._url, json={"student_numbers": numbers}, headers=headers
            )
        except httpx.HTTPError as exc:
            log.warning("student lookup at %s failed: %r", self._url, exc)
            raise StudentLookupUnavailable("Students cannot be checked right now.") from exc
        if response.status_code != 200:
            log.warning("student lookup at %s answered %d", self._url, response.status_code)
            raise StudentLookupUnavailable("Students cannot be checked right now.")
        try:
            return student_records(response.json())
        except (ValueError, ValidationError) as exc:
            log.error("student lookup at %s answered an unexpected body: %r", self._url, exc)
            raise StudentLookupUnavailable("Students cannot be checked right now.") from exc
