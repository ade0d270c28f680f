"""Forgotten passwords: a single-use reset token for an active or invited user.

``POST /auth/password/forgot`` answers 202 whatever the address, so nobody can
learn from it whether an account exists. The answer is the same body and
status either way, and it is sent before the account is even looked up: the
request path does the same work for every address (validation and the rate
limits), and the lookup, the token and the event are written after the
response (:meth:`PasswordResets.issue`, run as the response's background
task), where their cost cannot show in the response time.

The token is taken by ``POST /auth/password/reset`` like an invitation
(:meth:`auth_service.usecases.accounts.Accounts.accept_invitation`).
"""

from __future__ import annotations

import logging

from service_kit.db import Database
from service_kit.errors import ValidationFailed
from sqlalchemy.ext.asyncio import AsyncSession

from auth_service.domain.tokens import new_secret_token, token_digest
from auth_service.domain.users import User, parsed_email
from auth_service.messaging import events
from auth_service.metrics import PASSWORD_RESET_REQUESTS
from auth_service.store import invitations as invitations_store
from auth_service.store import users as users_store
from auth_service.store.login_limits import LoginLimiter
from auth_service.usecases.sessions import rate_limited

log = logging.getLogger(__name__)


class PasswordResets:
    def __init__(self, db: Database, limiter: LoginLimiter, ttl_seconds: int) -> None:
        self._db = db
        # The sign-in limiter's mechanism under its own scope (store.login_limits).
        self._limiter = limiter
        self._ttl = ttl_seconds

    async def admit(self, email: str, client_address: str) -> str:
        """The canonical form of ``email`` if a reset may be requested for it now.

        422 for what is no email address at all (that says nothing about any
        account); 429 ``AUTH_RATE_LIMITED`` past the limits per client address
        and per email. Every admitted request counts toward its email's limit.
        """
        address, problems = parsed_email("email", email)
        if address is None:
            raise ValidationFailed(details=problems)
        admission = await self._limiter.admit(client_address, address.canonical)
        if admission.refusal is not None:
            PASSWORD_RESET_REQUESTS.labels(f"rate_limited_{admission.refusal.reason}").inc()
            raise rate_limited(
                admission.refusal, "Too many password reset requests; try again later."
            )
        await self._limiter.record_failure(address.canonical)
        return address.canonical

    async def issue(self, email_key: str) -> None:
        """A reset token and its event if an active or invited user has this address.

        One transaction: the user is locked (a concurrent deactivation either
        comes first, and nothing is issued, or after, and drops the token), the
        older reset tokens are voided, the new one's hash is stored and
        ``user.password_reset_requested`` with the raw token goes to the outbox.
        Never raises: it runs after the response, where nobody could be told.
        """
        try:
            async with self._db.transaction() as session:
                issued = await self._issue_in(session, email_key)
        except Exception:
            PASSWORD_RESET_REQUESTS.labels("failed").inc()
            log.exception("a password reset request failed")
            return
        PASSWORD_RESET_REQUESTS.labels("issued" if issued else "not_issued").inc()

    async def _issue_in(self, session: AsyncSession, email_key: str) -> bool:
        found = await users_store.get_user_by_email(await session.connection(), email_key)
        if found is None:
            return False
        user = await users_store.get_user(session, found.id, lock="update")
        if user is None or not await _may_reset(session, user):
            return False
        token = new_secret_token()
        await invitations_store.void_open_resets(session, user.id)
        expires_at = await invitations_store.add_invitation(
            session, user.id, token_digest(token), self._ttl, purpose="password_reset"
        )
        await events.user_password_reset_requested(session, user, token, expires_at)
        return True


async def _may_reset(session: AsyncSession, user: User) -> bool:
    """Active, or invited and never activated; a deactivated user gets nothing.

    Both of the latter are inactive: an invited user still holds the
    invitation, a deactivation dropped it (invitations_store.was_invited).
    """
    if user.active:
        return True
    return user.password_hash is None and await invitations_store.was_invited(session, user.id)
