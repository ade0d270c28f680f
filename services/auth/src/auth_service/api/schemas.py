"""Request and response bodies of the HTTP API (API.md, "Auth and users")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field
from service_kit.patch import PatchModel

from auth_service.domain.passwords import MAX_PASSWORD_LENGTH
from auth_service.domain.users import Role, User
from auth_service.usecases.sessions import TokenPair

MAX_STUDENT_LOOKUP = 5000
# Generous bounds that only stop absurd bodies; the domain rules say what is valid.
_TEXT = 1024
_TOKEN = 512


class _Body(BaseModel):
    # Unknown fields are refused (422), so a typo such as "fullname" in a PATCH
    # does not silently change nothing.
    model_config = ConfigDict(extra="forbid")


class LoginIn(_Body):
    email: str = Field(max_length=_TEXT)
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)


class RefreshIn(_Body):
    refresh_token: str = Field(max_length=_TOKEN)


class PasswordChangeIn(_Body):
    current_password: str = Field(max_length=MAX_PASSWORD_LENGTH)
    new_password: str = Field(description="At least 10 characters.")


class PasswordResetIn(_Body):
    token: str = Field(max_length=_TOKEN, description="The invitation token.")
    new_password: str = Field(description="At least 10 characters.")


class TokenPairOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")

    @classmethod
    def of(cls, pair: TokenPair) -> Self:
        return cls(
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
        )


class UserCreateIn(_Body):
    email: str = Field(max_length=_TEXT)
    full_name: str = Field(max_length=_TEXT)
    role: str = Field(max_length=_TEXT, description="admin, examiner or student.")
    student_number: str | None = Field(None, max_length=_TEXT)
    password: str | None = Field(
        None, description="Without one the account is invited (inactive until reset)."
    )


class UserPatchIn(PatchModel):
    """Fields left out stay as they are; none of them may be null."""

    full_name: str | None = Field(None, max_length=_TEXT)
    role: str | None = Field(None, max_length=_TEXT, description="admin, examiner or student.")
    active: bool | None = None


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    student_number: str | None
    active: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> Self:
        return cls(
            id=user.id,
            email=user.email,
            full_name=user.full_name,
            role=user.role,
            student_number=user.student_number,
            active=user.active,
            created_at=user.created_at,
        )


class InternalUserOut(UserOut):
    """A user for other services: with ``version``, to order it against their events."""

    version: int

    @classmethod
    def of(cls, user: User) -> Self:
        return cls(**UserOut.of(user).model_dump(), version=user.version)


class InternalUserListOut(BaseModel):
    items: list[InternalUserOut]


class StudentLookupIn(_Body):
    student_numbers: list[str] = Field(max_length=MAX_STUDENT_LOOKUP)
