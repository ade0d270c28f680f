"""Request and response bodies of the HTTP API (API.md, "Auth and users")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool
from service_kit.patch import PatchModel

from auth_service.domain.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from auth_service.domain.users import (
    MAX_EMAIL_LENGTH,
    MAX_FULL_NAME_LENGTH,
    MAX_STUDENT_NUMBER_LENGTH,
    Role,
    User,
)
from auth_service.usecases.sessions import TokenPair

MAX_STUDENT_LOOKUP = 5000
# Generous bounds that only stop absurd bodies; the domain rules say what is valid.
_TEXT = 1024
_TOKEN = 512
# The domain's rules, stated for the OpenAPI document only (json_schema_extra):
# the domain checks them, so a body's every problem shows in one 422 with its
# own detail code (EMAIL_INVALID, PASSWORD_TOO_SHORT, INVALID_ROLE, ...).
_EMAIL: dict[str, Any] = {"format": "email", "maxLength": MAX_EMAIL_LENGTH}
_NEW_PASSWORD: dict[str, Any] = {"minLength": MIN_PASSWORD_LENGTH}
_FULL_NAME: dict[str, Any] = {"maxLength": MAX_FULL_NAME_LENGTH, "pattern": r"\S"}
_ROLE: dict[str, Any] = {"enum": [r.value for r in Role]}
_STUDENT_NUMBER: dict[str, Any] = {"maxLength": MAX_STUDENT_NUMBER_LENGTH, "pattern": r"\S"}


class _Body(BaseModel):
    # Unknown fields are refused (422), so a typo such as "fullname" in a PATCH
    # does not silently change nothing.
    model_config = ConfigDict(extra="forbid")


class LoginIn(_Body):
    email: str = Field(max_length=_TEXT, json_schema_extra=_EMAIL)
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)


class RefreshIn(_Body):
    refresh_token: str = Field(max_length=_TOKEN)


class PasswordChangeIn(_Body):
    current_password: str = Field(max_length=MAX_PASSWORD_LENGTH)
    new_password: str = Field(
        description="At least 10 characters.",
        json_schema_extra={**_NEW_PASSWORD, "maxLength": MAX_PASSWORD_LENGTH},
    )


class PasswordForgotIn(_Body):
    email: str = Field(
        max_length=_TEXT,
        description="The account's address. The answer is 202 whether or not it has one.",
        json_schema_extra=_EMAIL,
    )


class PasswordResetIn(_Body):
    token: str = Field(
        max_length=_TOKEN,
        description="An invitation token (`user.invited`) or a reset token "
        "(`user.password_reset_requested`).",
    )
    new_password: str = Field(
        description="At least 10 characters.",
        json_schema_extra={**_NEW_PASSWORD, "maxLength": MAX_PASSWORD_LENGTH},
    )


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
    # A student has a student number, nobody else has one (API.md); a blank one is
    # no number (spreadsheets leave blanks).
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"role": {"const": Role.STUDENT.value}}, "required": ["role"]},
            "then": {
                "properties": {"student_number": {"type": "string", "pattern": r"\S"}},
                "required": ["student_number"],
            },
            "else": {
                "properties": {
                    "student_number": {
                        "anyOf": [{"type": "null"}, {"type": "string", "pattern": r"^\s*$"}]
                    }
                }
            },
        }
    )

    email: str = Field(max_length=_TEXT, json_schema_extra=_EMAIL)
    full_name: str = Field(max_length=_TEXT, json_schema_extra=_FULL_NAME)
    role: str = Field(
        max_length=_TEXT, description="admin, examiner or student.", json_schema_extra=_ROLE
    )
    student_number: str | None = Field(
        None,
        max_length=_TEXT,
        description="Required for students, unique; null for others.",
        json_schema_extra={"anyOf": [{"type": "string", **_STUDENT_NUMBER}, {"type": "null"}]},
    )
    password: str | None = Field(
        None,
        description="At least 10 characters. Without one the account is invited "
        "(inactive until reset).",
        json_schema_extra={
            "anyOf": [
                {"type": "string", **_NEW_PASSWORD, "maxLength": MAX_PASSWORD_LENGTH},
                {"type": "null"},
            ]
        },
    )


class UserPatchIn(PatchModel):
    """Fields left out stay as they are; none of them may be null."""

    full_name: str | None = Field(None, max_length=_TEXT, json_schema_extra=_FULL_NAME)
    role: str | None = Field(
        None, max_length=_TEXT, description="admin, examiner or student.", json_schema_extra=_ROLE
    )
    # Strict: 0, 1 or "false" for a flag that deactivates accounts is a client's
    # mistake, refused (422 BOOL_TYPE), not guessed at.
    active: StrictBool | None = None


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
