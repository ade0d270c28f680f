"""Password policy and Argon2id hashing (synchronous; :mod:`auth_service.hashing` runs it
off the event loop)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from service_kit.errors import DetailCode, ErrorDetail

MIN_PASSWORD_LENGTH = 10
# Argon2 pre-hashes its input, so length barely changes its cost; the cap only stops
# megabyte "passwords" from being parsed, logged or stored anywhere.
MAX_PASSWORD_LENGTH = 1024


def password_problems(field: str, password: str) -> list[ErrorDetail]:
    """What is wrong with a new password, as validation details (empty when it is fine)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return [
            ErrorDetail(
                field,
                DetailCode.PASSWORD_TOO_SHORT,
                f"The password must have at least {MIN_PASSWORD_LENGTH} characters.",
            )
        ]
    if len(password) > MAX_PASSWORD_LENGTH:
        return [
            ErrorDetail(
                field,
                DetailCode.PASSWORD_TOO_LONG,
                f"The password must have at most {MAX_PASSWORD_LENGTH} characters.",
            )
        ]
    return []


@dataclass(frozen=True, slots=True)
class Argon2Params:
    """Argon2id cost parameters."""

    memory_kib: int
    time_cost: int
    parallelism: int


# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1 at the least.
OWASP_MINIMUM = Argon2Params(memory_kib=19_456, time_cost=2, parallelism=1)


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    # The stored hash was made with other parameters than the current ones.
    needs_rehash: bool = False


class Argon2idHasher:
    """Argon2id with the configured parameters; 16-byte salt, 32-byte tag."""

    def __init__(self, params: Argon2Params) -> None:
        self.params = params
        self._hasher = PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        # Verified when the email is unknown (or has no password yet), so that
        # answer costs the same time as a wrong password and does not reveal
        # which emails have accounts.
        self.dummy_hash = self._hasher.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, encoded: str | None, password: str) -> Verification:
        """Checks ``password`` against ``encoded``; ``None`` checks the dummy and fails."""
        target = encoded if encoded is not None else self.dummy_hash
        try:
            self._hasher.verify(target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return Verification(ok=False)
        if encoded is None:
            return Verification(ok=False)
        return Verification(ok=True, needs_rehash=self._hasher.check_needs_rehash(encoded))
