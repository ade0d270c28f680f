"""Sign-in sessions: login, refresh-token rotation, logout, password change.

A session is a refresh-token family: a login opens one, every refresh rotates
its token, and presenting a token that was already rotated revokes the whole
family (whoever holds the newer token, the thief or the owner, is signed out;
OAuth 2.0 Security BCP, refresh token rotation). Argon2 runs outside database
transactions so a slow hash never holds a pooled connection or a row lock.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from enum import Enum

from service_kit.db import Database
from service_kit.errors import (
    DetailCode,
    ErrorCode,
    ErrorDetail,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.domain.passwords import Verification, password_problems
from auth_service.domain.tokens import (
    KeySet,
    TokenPolicy,
    issue_access_token,
    new_secret_token,
    token_digest,
)
from auth_service.domain.users import User, email_key
from auth_service.hashing import PasswordHashing
from auth_service.metrics import LOGIN_ATTEMPTS, TOKEN_REFRESHES
from auth_service.store import refresh_tokens as tokens_store
from auth_service.store import users as users_store
from auth_service.store.login_limits import LoginLimiter, Refusal


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: uuid.UUID


class _Refresh(Enum):
    OK = "success"
    INVALID = "invalid"
    REUSED = "reused"


def _invalid_credentials() -> Unauthorized:
    return Unauthorized(code=ErrorCode.AUTH_INVALID_CREDENTIALS)


def rate_limited(refusal: Refusal, message: str | None = None) -> RateLimited:
    """429 ``AUTH_RATE_LIMITED`` with ``Retry-After`` (the catalog's message by default)."""
    return RateLimited(
        refusal.retry_after_seconds, code=ErrorCode.AUTH_RATE_LIMITED, message=message
    )


class Sessions:
    def __init__(
        self,
        db: Database,
        hashing: PasswordHashing,
        limiter: LoginLimiter,
        keys: KeySet,
        policy: TokenPolicy,
        refresh_ttl_seconds: int,
    ) -> None:
        self._db = db
        self._hashing = hashing
        self._limiter = limiter
        self._keys = keys
        self._policy = policy
        self._refresh_ttl = refresh_ttl_seconds

    async def _issue(self, session: AsyncSession, user: User, family_id: uuid.UUID) -> TokenPair:
        refresh_token = new_secret_token()
        await tokens_store.add_token(
            session, family_id, token_digest(refresh_token), self._refresh_ttl
        )
        return self._pair(user, family_id, refresh_token)

    def _pair(self, user: User, family_id: uuid.UUID, refresh_token: str) -> TokenPair:
        """``refresh_token`` (already stored) with a new access token of ``user``."""
        access = issue_access_token(
            self._keys,
            self._policy,
            user_id=user.id,
            role=user.role.value,
            email=user.email,
            session_id=family_id,
            access_epoch=user.access_epoch,
            now=int(time.time()),
        )
        return TokenPair(access.token, refresh_token, access.expires_in, family_id)

    async def login(self, email: str, password: str, client_address: str) -> TokenPair:
        """Tokens for a right email and password of an active user; else one 401 for all."""
        # Looked up by its canonical form: any lookalike of an address finds its account.
        email = email_key(email)
        # Shed before any Redis or SQL round trip: a refused sign-in costs next to nothing.
        self._hashing.admit("login")
        admission = await self._limiter.admit(client_address, email)
        if admission.refusal is not None:
            LOGIN_ATTEMPTS.labels(f"rate_limited_{admission.refusal.reason}").inc()
            raise rate_limited(admission.refusal)
        # A second round only when the stored hash changed between our verify and
        # our lock, e.g. a concurrent login of the same user re-hashed it.
        for _ in range(2):
            user, verification = await self._verify(email, password)
            if user is None or not verification.ok:
                await self._limiter.record_failure(email)
                LOGIN_ATTEMPTS.labels("invalid_credentials").inc()
                raise _invalid_credentials()
            pair = await self._open_session(user, password, verification.needs_rehash)
            if pair is not None:
                if admission.may_have_failures:
                    await self._limiter.clear_failures(email)
                LOGIN_ATTEMPTS.labels("success").inc()
                return pair
        LOGIN_ATTEMPTS.labels("invalid_credentials").inc()
        raise _invalid_credentials()

    async def _verify(self, email: str, password: str) -> tuple[User | None, Verification]:
        """The active user with this email and password, or (None, failed)."""
        async with self._db.autocommit() as conn:
            user = await users_store.get_user_by_email(conn, email)
        # Always one Argon2 verify, also for an unknown email or an invited user
        # (a dummy hash), so the response time does not tell which emails exist.
        # Admitted: with too many hashes queued the login is answered 503 at once.
        verification = await self._hashing.verify(
            user.password_hash if user is not None else None, password, operation="login"
        )
        if user is None or not user.active:
            return None, Verification(ok=False)
        return user, verification

    async def _open_session(
        self, user: User, password: str, needs_rehash: bool
    ) -> TokenPair | None:
        """A new family and its tokens; None if the user changed since it was verified."""
        # The re-hash waits for no budget of its own, but is skipped (left to a later
        # login) while the hashing queue is over budget: the sign-in itself was admitted.
        if needs_rehash and not self._hashing.over_budget():
            return await self._open_session_rehashing(user, password)
        # Verification succeeded, so there is a stored hash.
        assert user.password_hash is not None
        family_id, refresh_token = uuid.uuid4(), new_secret_token()
        # One statement re-checks the user under a row lock and writes the
        # family and its token (tokens_store.open_family): a deactivation or
        # password change that committed since the verify, or is still running,
        # wins; one that locks the user after us revokes the family made here.
        async with self._db.autocommit() as conn:
            current = await tokens_store.open_family(
                conn,
                user_id=user.id,
                verified_hash=user.password_hash,
                family_id=family_id,
                token_hash=token_digest(refresh_token),
                ttl_seconds=self._refresh_ttl,
            )
        if current is None:
            return None
        return self._pair(current, family_id, refresh_token)

    async def _open_session_rehashing(self, user: User, password: str) -> TokenPair | None:
        """:meth:`_open_session` that also stores a hash made with the current parameters.

        Rare (once per user after the parameters change), so it takes the plain
        transaction: lock the user for the update, re-check, write, commit.
        """
        rehashed = await self._hashing.hash(password)
        async with self._db.transaction() as session:
            current = await users_store.get_user(session, user.id, lock="update")
            if current is None or not current.active or current.password_hash != user.password_hash:
                return None
            await users_store.set_password_hash(session, user.id, rehashed)
            family_id = await tokens_store.create_family(session, user.id)
            return await self._issue(session, current, family_id)

    async def refresh(self, refresh_token: str) -> TokenPair:
        digest = token_digest(refresh_token)
        outcome, pair = _Refresh.INVALID, None
        async with self._db.transaction() as session:
            owner = await tokens_store.owner_of(session, digest)
            if owner is not None:
                outcome, pair = await self._rotate(session, owner, digest)
        # Raised after the commit: the revocation of a reused family must stick.
        TOKEN_REFRESHES.labels(outcome.value).inc()
        if outcome is _Refresh.REUSED:
            raise Unauthorized(code=ErrorCode.AUTH_REFRESH_REUSED)
        if pair is None:
            raise Unauthorized(code=ErrorCode.AUTH_REFRESH_INVALID)
        return pair

    async def _rotate(
        self, session: AsyncSession, owner: tokens_store.TokenOwner, digest: bytes
    ) -> tuple[_Refresh, TokenPair | None]:
        user = await users_store.get_user(session, owner.user_id, lock="share")
        # The family lock makes concurrent refreshes of one token run one after
        # the other: the second finds it rotated, so two live tokens never exist.
        state = await tokens_store.lock_token(session, owner.family_id, digest)
        if state is None:
            return _Refresh.INVALID, None
        if state.rotated:
            # Reported as reuse even when the family is already revoked: it is
            # the same signal (a copy of an old token is in circulation).
            await tokens_store.revoke_family(session, owner.family_id, "reuse")
            return _Refresh.REUSED, None
        if state.family_revoked or state.expired:
            return _Refresh.INVALID, None
        if user is None or not user.active:
            await tokens_store.revoke_family(session, owner.family_id, "inactive")
            return _Refresh.INVALID, None
        await tokens_store.mark_rotated(session, digest)
        return _Refresh.OK, await self._issue(session, user, owner.family_id)

    async def logout(self, user_id: uuid.UUID, refresh_token: str) -> None:
        """Revokes the family of ``refresh_token`` if it is the caller's; idempotent."""
        async with self._db.transaction() as session:
            owner = await tokens_store.owner_of(session, token_digest(refresh_token))
            if owner is not None and owner.user_id == user_id:
                await tokens_store.revoke_family(session, owner.family_id, "logout")

    async def change_password(
        self,
        user: User,
        session_id: uuid.UUID | None,
        current_password: str,
        new_password: str,
    ) -> None:
        """Sets a new password and signs out every other session (``session_id`` stays)."""
        problems = password_problems("new_password", new_password)
        if problems:
            raise ValidationFailed(details=problems)
        # A stolen access token must not become a password-guessing oracle:
        # wrong current passwords count against the same per-email limit.
        refusal = await self._limiter.failures_exceeded(user.email)
        if refusal is not None:
            raise rate_limited(refusal)
        verification = await self._hashing.verify(
            user.password_hash, current_password, operation="password_change"
        )
        if not verification.ok:
            await self._limiter.record_failure(user.email)
            # 422, not 401: the caller's session is fine, and a 401 would make a
            # client refresh and retry as if its token had expired.
            raise ValidationFailed(
                details=[
                    ErrorDetail(
                        "current_password",
                        DetailCode.PASSWORD_INCORRECT,
                        "The current password is wrong.",
                    )
                ]
            )
        # Not admitted again: the change was admitted with its verify and waits its turn.
        new_hash = await self._hashing.hash(new_password)
        async with self._db.transaction() as session:
            current = await users_store.get_user(session, user.id, lock="update")
            if current is None or not current.active:
                raise Unauthorized()
            if current.password_hash != user.password_hash:
                # Changed by a concurrent request since we verified: verify again.
                raise ValidationFailed(
                    details=[
                        ErrorDetail(
                            "current_password",
                            DetailCode.PASSWORD_INCORRECT,
                            "The password was changed meanwhile.",
                        )
                    ]
                )
            await users_store.set_password_hash(session, user.id, new_hash)
            await tokens_store.revoke_user_families(
                session, user.id, "password_changed", keep=session_id
            )
        await self._limiter.clear_failures(user.email)
