"""Accounts: creating, changing and finding users; invitations; the first admin.

Every change writes its event to the outbox in the same transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from service_kit.db import Database
from service_kit.errors import (
    Conflict,
    DetailCode,
    ErrorCode,
    ErrorDetail,
    NotFound,
    ValidationFailed,
)

from auth_service.domain.passwords import password_problems
from auth_service.domain.tokens import new_secret_token, token_digest
from auth_service.domain.users import (
    Role,
    User,
    clean_student_number,
    full_name_problems,
    parsed_email,
    parsed_role,
    role_change_problems,
    student_number_problems,
)
from auth_service.hashing import PasswordHashing
from auth_service.messaging import events
from auth_service.store import invitations as invitations_store
from auth_service.store import refresh_tokens as tokens_store
from auth_service.store import revocations as revocations_store
from auth_service.store import users as users_store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NewUser:
    email: str
    full_name: str
    role: str
    student_number: str | None = None
    password: str | None = None


@dataclass(frozen=True, slots=True)
class UserChanges:
    full_name: str | None = None
    role: str | None = None
    active: bool | None = None


class BootstrapError(RuntimeError):
    """ADMIN_EMAIL is not a valid address."""


def _token_invalid() -> ValidationFailed:
    return ValidationFailed(
        details=[
            ErrorDetail(
                "token",
                DetailCode.TOKEN_INVALID,
                "The invitation or reset token is unknown, used or expired.",
            )
        ]
    )


class Accounts:
    def __init__(self, db: Database, hashing: PasswordHashing, invitation_ttl_seconds: int) -> None:
        self._db = db
        self._hashing = hashing
        self._invitation_ttl = invitation_ttl_seconds

    async def create_user(self, new: NewUser) -> User:
        """A new user; without a password the user is inactive and gets an invitation."""
        email, details = parsed_email("email", new.email)
        role, role_details = parsed_role("role", new.role)
        details += role_details
        student_number = clean_student_number(new.student_number)
        details += full_name_problems("full_name", new.full_name)
        if role is not None:
            details += student_number_problems(role, student_number)
        if new.password is not None:
            details += password_problems("password", new.password)
        if details or email is None or role is None:
            raise ValidationFailed(details=details)
        password_hash = (
            await self._hashing.hash(new.password, operation="user_create")
            if new.password
            else None
        )

        async with self._db.transaction() as session:
            user = await users_store.insert_user(
                session,
                email=email,
                full_name=new.full_name.strip(),
                role=role,
                student_number=student_number,
                password_hash=password_hash,
                active=password_hash is not None,
            )
            if user is None:
                taken = await users_store.email_taken(session, email.canonical)
                code = ErrorCode.USER_EMAIL_TAKEN if taken else ErrorCode.STUDENT_NUMBER_TAKEN
                raise Conflict(code=code)
            await events.user_created(session, user)
            if password_hash is None:
                token = new_secret_token()
                expires_at = await invitations_store.add_invitation(
                    session, user.id, token_digest(token), self._invitation_ttl
                )
                await events.user_invited(session, user, token, expires_at)
        return user

    async def update_user(
        self, actor_id: uuid.UUID, user_id: uuid.UUID, changes: UserChanges
    ) -> User:
        details: list[ErrorDetail] = []
        full_name = changes.full_name.strip() if changes.full_name is not None else None
        if changes.full_name is not None:
            details += full_name_problems("full_name", changes.full_name)
        role: Role | None = None
        if changes.role is not None:
            role, role_details = parsed_role("role", changes.role)
            details += role_details
        if details:
            raise ValidationFailed(details=details)
        if actor_id == user_id and (changes.active is False or role not in (None, Role.ADMIN)):
            # Otherwise the last admin can lock everybody out of administration.
            raise Conflict("You cannot deactivate or demote your own account.")

        async with self._db.transaction() as session:
            user = await users_store.get_user(session, user_id, lock="update")
            if user is None:
                raise NotFound()
            if role is not None:
                details += role_change_problems(user, role)
            if details:
                raise ValidationFailed(details=details)
            values: dict[str, object] = {}
            if full_name is not None and full_name != user.full_name:
                values["full_name"] = full_name
            if role is not None and role != user.role:
                values["role"] = role.value
            if changes.active is not None and changes.active != user.active:
                values["active"] = changes.active
            if changes.active is False:
                # Also when the user is inactive already: "deactivating" an
                # invited user withdraws the invitation.
                await tokens_store.revoke_user_families(session, user_id, "deactivated")
                await invitations_store.drop_open_invitations(session, user_id)
            # A token states a role; one issued before a role change or a
            # deactivation must stop opening anything at once, not when it expires.
            if "role" in values or values.get("active") is False:
                reason = "role_changed" if "role" in values else "deactivated"
                await revocations_store.raise_access_epoch(session, user_id, reason)
            if not values:
                return user
            updated = await users_store.update_user(session, user_id, **values)
            await events.user_updated(session, updated)
        return updated

    async def accept_invitation(self, token: str, new_password: str) -> None:
        """Sets the password with an invitation or reset token; single use.

        Activates an invited user, and signs out every session of the account.
        Taking one token voids the user's other open ones: an older link must
        not set the password again.
        """
        problems = password_problems("new_password", new_password)
        if problems:
            raise ValidationFailed(details=problems)
        digest = token_digest(token)
        # Checked before hashing, so made-up tokens cannot make us burn Argon2 time.
        async with self._db.read_session(fresh=True) as session:
            if not await invitations_store.is_usable(session, digest):
                raise _token_invalid()
        password_hash = await self._hashing.hash(new_password, operation="password_reset")
        async with self._db.transaction() as session:
            user_id = await invitations_store.take_invitation(session, digest)
            user = await users_store.get_user(session, user_id, lock="update") if user_id else None
            if user is None:
                raise _token_invalid()
            await invitations_store.drop_open_invitations(session, user.id)
            updated = await users_store.update_user(
                session, user.id, password_hash=password_hash, active=True
            )
            await tokens_store.revoke_user_families(session, user.id, "password_reset")
            await events.user_updated(session, updated)

    async def find_user(self, user_id: uuid.UUID) -> User | None:
        async with self._db.read_session(fresh=True) as session:
            return await users_store.get_user(session, user_id)

    async def get_user(self, user_id: uuid.UUID) -> User:
        user = await self.find_user(user_id)
        if user is None:
            raise NotFound()
        return user

    async def list_users(
        self, *, role: Role | None, q: str | None, after: str | None, limit: int
    ) -> tuple[list[User], str | None]:
        async with self._db.read_session(fresh=True) as session:
            return await users_store.list_users(session, role=role, q=q, after=after, limit=limit)

    async def get_student(self, student_number: str) -> User:
        async with self._db.read_session(fresh=True) as session:
            user = await users_store.get_student(session, student_number)
        if user is None:
            raise NotFound()
        return user

    async def find_students(self, student_numbers: Sequence[str]) -> list[User]:
        # Primary: the callers ask precisely because a student was created a
        # moment ago and their read model has not caught up; a lagging replica
        # would answer "no such student" just the same.
        async with self._db.read_session(fresh=True) as session:
            return await users_store.find_students(session, student_numbers)

    async def bootstrap_admin(self, email: str, password: str) -> User | None:
        """Creates the first admin if no user has ``email``; the user, or None if nothing done.

        Safe with many replicas starting at once: the insert is ON CONFLICT DO
        NOTHING on the email index, so exactly one of them creates the admin
        (and writes the one ``user.created`` event).
        """
        if not password:
            return None
        address, problems = parsed_email("ADMIN_EMAIL", email)
        if address is None:
            raise BootstrapError(f"ADMIN_EMAIL is not valid: {problems[0].message}")
        async with self._db.read_session(fresh=True) as session:
            if await users_store.email_taken(session, address.canonical):
                return None
        password_hash = await self._hashing.hash(password)
        async with self._db.transaction() as session:
            user = await users_store.insert_user(
                session,
                email=address,
                full_name="Administrator",
                role=Role.ADMIN,
                student_number=None,
                password_hash=password_hash,
                active=True,
            )
            if user is not None:
                await events.user_created(session, user)
        if user is not None:
            log.info("created the first admin", extra={"user_id": str(user.id)})
        return user
