"""auth's internal user lookup: who is behind a user id the read model lacks.

The read model follows ``user.created`` with a lag, and a user created a
moment ago must still be told (DESIGN.md flow 2), so a user missing locally is
asked of auth (``GET {AUTH_URL}/internal/users/{id}``) before anything is
dropped. Only auth's 404 means "no such user"; anything else (auth down, a
timeout, a 5xx) is :class:`UserLookupUnavailable`, a transient error: the
consumer retries the message later instead of dropping a real user.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Protocol

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from service_kit.context import REQUEST_ID_HEADER, current_request_id
from service_kit.messaging.failures import TransientError

from notifier_service.store.users import UserRecord

MAX_CONCURRENT_LOOKUPS = 16
"""Lookups in flight at once for one batch of missing users."""


class UserLookupUnavailable(TransientError):
    """auth could not be asked; retry later rather than drop the user."""


class UserLookup(Protocol):
    async def find(self, ids: Iterable[uuid.UUID]) -> list[UserRecord]:
        """The users among ``ids`` that auth knows (unknown ids are left out)."""
        ...


class _AuthUser(BaseModel):
    """The fields of auth's internal user this service keeps."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    email: str
    full_name: str = ""
    role: str
    active: bool
    # Without a version the state is held at 0, so the user's events still apply over it.
    version: int = 0


class AuthUserLookup:
    """:class:`UserLookup` over auth's internal API (the client carries the service token)."""

    def __init__(self, http: httpx.AsyncClient, auth_url: str) -> None:
        self._http = http
        self._base = auth_url.rstrip("/")

    async def find(self, ids: Iterable[uuid.UUID]) -> list[UserRecord]:
        gate = asyncio.Semaphore(MAX_CONCURRENT_LOOKUPS)

        async def one(user_id: uuid.UUID) -> UserRecord | None:
            async with gate:
                return await self._one(user_id)

        found = await asyncio.gather(*(one(i) for i in set(ids)))
        return [user for user in found if user is not None]

    async def _one(self, user_id: uuid.UUID) -> UserRecord | None:
        headers = {}
        request_id = current_request_id()
        if request_id != "-":
            headers[REQUEST_ID_HEADER] = request_id
        try:
            response = await self._http.get(
                f"{self._base}/internal/users/{user_id}", headers=headers
            )
        except httpx.HTTPError as exc:
            raise UserLookupUnavailable(f"auth user lookup failed: {type(exc).__name__}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise UserLookupUnavailable(f"auth user lookup answered {response.status_code}")
        try:
            user = _AuthUser.model_validate_json(response.content)
        except ValidationError as exc:
            raise UserLookupUnavailable("auth user lookup answered an unreadable user") from exc
        return UserRecord(user.id, user.email, user.full_name, user.role, user.active, user.version)
