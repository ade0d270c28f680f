"""Access-token verification from a JWKS, and the role dependencies.

Tokens are EdDSA (Ed25519) JWTs with a ``kid`` (ADR 0002). Only the algorithms
in :data:`ALLOWED_ALGORITHMS` are accepted, and only with a key of the JWKS, so
``alg: none`` and HS256-signed-with-the-public-key forgeries fail. The JWKS is
cached; an unknown ``kid`` triggers one refetch (at most every
``MIN_REFETCH_SECONDS``, so a flood of made-up kids cannot hammer auth) to pick up
a key that was rotated in.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, Request
from jwt import PyJWK

from service_kit.errors import ErrorCode, Forbidden, Unauthorized, UpstreamUnavailable
from service_kit.revocations import RevocationList

ALLOWED_ALGORITHMS = ("EdDSA",)
MIN_REFETCH_SECONDS = 10.0
_VERIFIED_CACHE_SIZE = 10_000
_FORGED_CACHE_SIZE = 4_096
_FORGED_CACHE_SECONDS = 600.0

JwksFetcher = Callable[[], Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True, slots=True)
class Principal:
    """The verified caller of a request."""

    user_id: uuid.UUID
    role: str
    email: str
    token_id: str
    expires_at: int
    session_id: str | None = None
    """The ``sid`` claim: the sign-in session (refresh-token family), when present."""
    access_epoch: int = 0
    """The ``access_epoch`` claim: the user's epoch when the token was issued (0 if absent);
    a revocation of the user raises the epoch every valid token must have."""


SERVICE_TOKEN_USE = "service"
"""The ``token_use`` claim of a service token (user tokens have none)."""


def internal_audience(service: str) -> str:
    """The ``aud`` of service tokens that open ``service``'s internal endpoints."""
    return f"internal:{service}"


@dataclass(frozen=True, slots=True)
class ServiceCaller:
    """The verified service behind a call to an internal endpoint (the token's ``client_id``)."""

    client_id: str


class KeyNotFound(Exception):
    pass


class KeysUnavailable(Exception):
    """No usable key set: the JWKS could never be fetched, or is stale past its grace."""


log = logging.getLogger(__name__)


class JwksKeyStore:
    """Public keys by ``kid``, loaded from a JWKS and refreshed when stale.

    When a refresh fails the keys already held stay in use for
    ``stale_if_error_seconds`` more (an auth outage must not sign everybody out),
    and the next attempt waits ``retry_after_failure_seconds`` so a down JWKS
    endpoint is not hit by every request.
    """

    def __init__(
        self,
        fetch: JwksFetcher,
        cache_seconds: float,
        *,
        stale_if_error_seconds: float = 3600.0,
        retry_after_failure_seconds: float = 5.0,
    ) -> None:
        self._fetch = fetch
        self._cache_seconds = cache_seconds
        self._stale_if_error = stale_if_error_seconds
        self._retry_after_failure = retry_after_failure_seconds
        self._keys: dict[str, PyJWK] = {}
        self._loaded_at = float("-inf")
        self._next_attempt = float("-inf")
        self._last_refetch = float("-inf")
        self._lock = asyncio.Lock()

    @staticmethod
    def parse(jwks: Mapping[str, Any]) -> dict[str, PyJWK]:
        keys: dict[str, PyJWK] = {}
        for entry in jwks.get("keys", []):
            kid = entry.get("kid")
            if not kid or entry.get("use", "sig") != "sig":
                continue
            try:
                key = PyJWK.from_dict(dict(entry))
            except jwt.PyJWTError:
                continue
            if key.algorithm_name not in ALLOWED_ALGORITHMS:
                continue
            keys[kid] = key
        return keys

    def _stale(self) -> bool:
        return time.monotonic() - self._loaded_at > self._cache_seconds

    def _usable(self) -> bool:
        return time.monotonic() - self._loaded_at <= self._cache_seconds + self._stale_if_error

    async def _refresh(self) -> None:
        """Loads the JWKS; on failure keeps the old keys and backs off (call under the lock)."""
        if time.monotonic() < self._next_attempt:
            return
        try:
            keys = self.parse(await self._fetch())
        except Exception as exc:
            self._next_attempt = time.monotonic() + self._retry_after_failure
            log.warning("JWKS refresh failed; keeping %d known keys: %r", len(self._keys), exc)
            return
        self._keys = keys
        self._loaded_at = time.monotonic()
        self._next_attempt = float("-inf")

    def publishes(self, kid: str) -> bool:
        """Whether ``kid`` is still in the key set (a withdrawn key ends its tokens)."""
        return kid in self._keys and self._usable()

    async def key_for(self, kid: str) -> PyJWK:
        if self._stale() and time.monotonic() >= self._next_attempt:
            async with self._lock:
                if self._stale():
                    await self._refresh()
        key = self._keys.get(kid)
        if key is None:
            async with self._lock:
                key = self._keys.get(kid)
                if key is None and time.monotonic() - self._last_refetch >= MIN_REFETCH_SECONDS:
                    # An unknown kid may be a key rotated in since our last fetch.
                    self._last_refetch = time.monotonic()
                    self._next_attempt = float("-inf")
                    await self._refresh()
                    key = self._keys.get(kid)
        if not self._usable():
            raise KeysUnavailable(kid)
        if key is None:
            raise KeyNotFound(kid)
        return key


def http_jwks_fetcher(url: str, timeout_seconds: float = 3.0) -> JwksFetcher:
    async def fetch() -> Mapping[str, Any]:
        async with httpx.AsyncClient(timeout=timeout_seconds) as client:
            response = await client.get(url)
            response.raise_for_status()
            data: Mapping[str, Any] = response.json()
            return data

    return fetch


class TokenVerifier:
    """Verifies access tokens; remembers recently verified ones until they expire.

    A token's signature cannot change, so a verified token is cached by its exact
    text (bounded LRU); ``exp`` is still checked on every use. This keeps the
    Ed25519 verify off the hot path of a client sending the same token repeatedly.
    Revocation is checked on every use too, cached or not (``revocations``, set by
    the service host; see :mod:`service_kit.revocations`).

    A token whose signature failed is remembered too (by its SHA-256, oldest out first,
    for ``_FORGED_CACHE_SECONDS``), so replaying one forgery with a known ``kid``
    costs a hash, not another verify. Only a bad signature is remembered: a key
    set that cannot be loaded (503) or an expired token says nothing lasting.

    Service tokens (:meth:`verify_service`) are checked with the same keys but
    their own audience, and are never taken for a user's (they have no user
    ``sub`` and carry ``token_use: service``).
    """

    def __init__(
        self,
        keys: JwksKeyStore,
        issuer: str,
        audience: str,
        leeway_seconds: int = 5,
        *,
        revocations: RevocationList | None = None,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self.revocations = revocations
        self._verified: OrderedDict[str, tuple[Principal, str]] = OrderedDict()
        self._services: OrderedDict[str, tuple[ServiceCaller, str, int]] = OrderedDict()
        self._forged: OrderedDict[bytes, float] = OrderedDict()

    async def verify(self, token: str) -> Principal:
        principal = await self._verify_user(token)
        if self.revocations is not None:
            self.revocations.check(principal.user_id, principal.session_id, principal.access_epoch)
        return principal

    async def _verify_user(self, token: str) -> Principal:
        cached = self._verified.get(token)
        if cached is not None:
            principal, kid = cached
            if principal.expires_at + self._leeway < time.time():
                self._verified.pop(token, None)
                raise Unauthorized(code=ErrorCode.AUTH_TOKEN_EXPIRED)
            if self._keys.publishes(kid):
                self._verified.move_to_end(token)
                return principal
            # The signing key was withdrawn (or the key set went stale): verify afresh.
            self._verified.pop(token, None)
        claims, kid = await self._checked_claims(token, self._audience)
        if claims.get("token_use") == SERVICE_TOKEN_USE:
            raise Unauthorized()
        try:
            principal = Principal(
                user_id=uuid.UUID(str(claims["sub"])),
                role=str(claims["role"]),
                email=str(claims.get("email", "")),
                token_id=str(claims["jti"]),
                expires_at=int(claims["exp"]),
                session_id=str(claims["sid"]) if "sid" in claims else None,
                access_epoch=int(claims.get("access_epoch", 0)),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise Unauthorized() from exc
        _remember(self._verified, token, (principal, kid), _VERIFIED_CACHE_SIZE)
        return principal

    async def verify_service(self, token: str, audience: str) -> ServiceCaller:
        """The service a token for ``audience`` was issued to; 401 for anything else."""
        cached = self._services.get(token)
        if cached is not None:
            caller, kid, expires_at = cached
            if expires_at + self._leeway >= time.time() and self._keys.publishes(kid):
                return caller
            self._services.pop(token, None)
        claims, kid = await self._checked_claims(token, audience)
        client_id = claims.get("client_id")
        if claims.get("token_use") != SERVICE_TOKEN_USE or not isinstance(client_id, str):
            raise Unauthorized()
        caller = ServiceCaller(client_id)
        _remember(self._services, token, (caller, kid, int(claims["exp"])), 256)
        return caller

    async def _checked_claims(self, token: str, audience: str) -> tuple[dict[str, Any], str]:
        """The claims of a token signed by a key of the JWKS for ``audience``, or 401/503."""
        digest = hashlib.sha256(token.encode()).digest()
        forged_at = self._forged.get(digest)
        if forged_at is not None:
            if time.monotonic() - forged_at < _FORGED_CACHE_SECONDS:
                raise Unauthorized()
            del self._forged[digest]
        try:
            return await self._decode(token, audience)
        except jwt.InvalidSignatureError as exc:
            self._forged[digest] = time.monotonic()
            if len(self._forged) > _FORGED_CACHE_SIZE:
                self._forged.popitem(last=False)
            raise Unauthorized() from exc

    async def _decode(self, token: str, audience: str) -> tuple[dict[str, Any], str]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized("The access token is malformed.") from exc
        alg = header.get("alg")
        kid = header.get("kid")
        if alg not in ALLOWED_ALGORITHMS or not isinstance(kid, str):
            raise Unauthorized()
        try:
            key = await self._keys.key_for(kid)
        except KeyNotFound as exc:
            raise Unauthorized() from exc
        except KeysUnavailable as exc:
            # Not the caller's fault: a 401 would make every client sign in again.
            raise UpstreamUnavailable("Access tokens cannot be verified right now.") from exc
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=list(ALLOWED_ALGORITHMS),
                audience=audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized(code=ErrorCode.AUTH_TOKEN_EXPIRED) from exc
        except jwt.InvalidSignatureError:
            raise  # _checked_claims remembers the forgery
        except jwt.PyJWTError as exc:
            raise Unauthorized() from exc
        return claims, kid


def _remember(cache: OrderedDict[str, Any], token: str, entry: Any, size: int) -> None:
    cache[token] = entry
    if len(cache) > size:
        cache.popitem(last=False)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header, or 401."""
    if not authorization:
        raise Unauthorized(code=ErrorCode.AUTH_TOKEN_MISSING)
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(code=ErrorCode.AUTH_TOKEN_MISSING)
    return token


def token_verifier_from_settings(
    jwks_url: str, issuer: str, audience: str, cache_seconds: float
) -> TokenVerifier:
    """A verifier of the JWKS at ``jwks_url``; the service host adds its revocation list."""
    return TokenVerifier(JwksKeyStore(http_jwks_fetcher(jwks_url), cache_seconds), issuer, audience)


async def current_principal(request: Request) -> Principal:
    verifier: TokenVerifier = request.app.state.token_verifier
    return await verifier.verify(bearer_token(request.headers.get("authorization")))


CurrentUser = Annotated[Principal, Depends(current_principal)]


def require_role(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """Dependency: the caller, if their role is one of ``roles``; else 403."""
    allowed = frozenset(roles)

    async def dependency(principal: CurrentUser) -> Principal:
        if principal.role not in allowed:
            raise Forbidden()
        return principal

    return dependency
