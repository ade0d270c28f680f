"""Service credentials: how our services call each other's ``/internal`` endpoints.

A user's access token never opens an internal endpoint, and neither does
reaching the port (docs/adr/0011). Each service holds a client id and a secret
(``SERVICE_CLIENT_ID``, ``SERVICE_CLIENT_SECRET``, from its own Kubernetes
Secret) and exchanges them at auth for a short-lived token (OAuth 2.0 client
credentials, RFC 6749 §4.4) bound to one audience, ``internal:<service>``: a
token for auth's internal endpoints is refused by results', and no user token
has such an audience. auth signs these tokens with the key of its JWKS, so the
called service verifies them the way it verifies users' tokens: locally, no
call per request.

* Callers: :class:`ServiceTokens` fetches, caches and renews the tokens (one
  fetch per audience, shared by concurrent requests; renewed before expiry,
  and once more when a call is answered 401); ``tokens.auth("results")`` is an
  ``httpx.Auth`` to give any ``httpx.AsyncClient``.
* Called services: :func:`internal_router` makes the ``/internal`` router whose
  every route requires a service token for this service
  (:data:`CurrentServiceCaller` names the caller).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Request

from service_kit.security import ServiceCaller, TokenVerifier, bearer_token, internal_audience

TOKEN_PATH = "/internal/oauth/token"
# Renewed this long before it expires, so a token never lapses mid-flight.
_RENEW_BEFORE_SECONDS = 30.0


class _BearerFromTokens(httpx.Auth):
    def __init__(self, tokens: ServiceTokens, audience: str) -> None:
        self._tokens = tokens
        self._audience = audience

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._tokens.token(self._audience)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            # The token may have been refused for a reason a new one cures (auth's
            # key rotated, or our cached token outlived a restart's clock skew).
            token = await self._tokens.token(self._audience, renew=True)
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    def sync_auth_flow(self, request: httpx.Request) -> Any:
        raise RuntimeError("service credentials are for async clients only")


class ServiceTokenUnavailable(httpx.HTTPError):
    """auth did not hand out a service token (down, or the credential was refused).

    An ``httpx.HTTPError``, raised by the client's call itself: a caller that
    treats a failed call as "the other service is unavailable" (503, or a retry
    for a consumer) treats this the same way without knowing about tokens.
    """


class ServiceTokens:
    """This service's client credential and the tokens it obtained with it."""

    def __init__(
        self,
        auth_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout_seconds: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.client_id = client_id
        self._url = auth_url.rstrip("/") + TOKEN_PATH
        self._credential = httpx.BasicAuth(client_id, client_secret)
        self._client = httpx.AsyncClient(timeout=timeout_seconds, transport=transport)
        self._cached: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def auth(self, service: str) -> httpx.Auth:
        """An ``httpx.Auth`` carrying a token for ``service``'s internal endpoints."""
        return _BearerFromTokens(self, internal_audience(service))

    async def token(self, audience: str, *, renew: bool = False) -> str:
        seen = self._cached.get(audience)
        if seen is not None and not renew and seen[1] > time.monotonic():
            return seen[0]
        async with self._locks.setdefault(audience, asyncio.Lock()):
            latest = self._cached.get(audience)
            # Another request fetched a new one while we waited: take it (one
            # fetch per audience, however many requests found the token stale).
            if latest is not None and latest is not seen and latest[1] > time.monotonic():
                return latest[0]
            token, lifetime = await self._fetch(audience)
            renew_at = time.monotonic() + max(lifetime - _RENEW_BEFORE_SECONDS, lifetime / 2)
            self._cached[audience] = (token, renew_at)
            return token

    async def _fetch(self, audience: str) -> tuple[str, float]:
        try:
            response = await self._client.post(
                self._url,
                data={"grant_type": "client_credentials", "audience": audience},
                auth=self._credential,
            )
        except httpx.HTTPError as exc:
            raise ServiceTokenUnavailable(f"auth could not be reached: {exc!r}") from exc
        if response.status_code != 200:
            # The body is our envelope (never holds the secret); the code says why.
            raise ServiceTokenUnavailable(
                f"auth refused a token for {audience} to {self.client_id}: "
                f"{response.status_code} {response.text[:200]}"
            )
        body = response.json()
        return str(body["access_token"]), float(body["expires_in"])

    async def aclose(self) -> None:
        await self._client.aclose()


async def _service_caller(request: Request) -> ServiceCaller:
    verifier: TokenVerifier = request.app.state.token_verifier
    audience: str = request.app.state.internal_audience
    return await verifier.verify_service(
        bearer_token(request.headers.get("authorization")), audience
    )


CurrentServiceCaller = Annotated[ServiceCaller, Depends(_service_caller)]


def internal_router(**kwargs: Any) -> APIRouter:
    """The ``/internal`` router: left out of the OpenAPI document, every route needs a
    service token for this service (401 without one, a user's token included)."""
    kwargs.setdefault("tags", ["internal"])
    return APIRouter(
        prefix="/internal",
        include_in_schema=False,
        dependencies=[Depends(_service_caller)],
        **kwargs,
    )
