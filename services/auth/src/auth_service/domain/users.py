"""Users: roles, and the rules a new user or a change must follow."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from email_validator import EmailNotValidError, validate_email
from service_kit.errors import DetailCode, ErrorDetail

MAX_EMAIL_LENGTH = 254
MAX_FULL_NAME_LENGTH = 200
MAX_STUDENT_NUMBER_LENGTH = 64


class Role(StrEnum):
    ADMIN = "admin"
    EXAMINER = "examiner"
    STUDENT = "student"


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    student_number: str | None
    active: bool
    created_at: datetime
    # Bumped on every change and carried in events, so read models can drop a
    # stale update that the broker delivered after a newer one.
    version: int
    password_hash: str | None = None


def normalized_email(field: str, raw: str) -> tuple[str | None, list[ErrorDetail]]:
    """The email as stored (domain lower-cased, Unicode normalized), or what is wrong with it.

    Uniqueness is case-insensitive on the whole address (a unique index on
    ``lower(email)``), so ``Ann@X.edu`` and ``ann@x.edu`` are one account.
    """
    try:
        valid = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        return None, [ErrorDetail(field, DetailCode.EMAIL_INVALID, str(exc))]
    if len(valid.normalized) > MAX_EMAIL_LENGTH:
        return None, [
            ErrorDetail(field, DetailCode.EMAIL_INVALID, "The email address is too long.")
        ]
    return valid.normalized, []


def full_name_problems(field: str, full_name: str) -> list[ErrorDetail]:
    if not full_name.strip():
        return [ErrorDetail(field, DetailCode.REQUIRED, "The full name must not be empty.")]
    if len(full_name) > MAX_FULL_NAME_LENGTH:
        return [
            ErrorDetail(
                field,
                DetailCode.TOO_LONG,
                f"At most {MAX_FULL_NAME_LENGTH} characters are allowed.",
            )
        ]
    return []


def parsed_role(field: str, raw: str) -> tuple[Role | None, list[ErrorDetail]]:
    """The role named by ``raw``, or a problem; parsed here (not by the request model)
    so that a bad role is reported together with every other problem of the body."""
    try:
        return Role(raw), []
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        return None, [
            ErrorDetail(field, DetailCode.INVALID_ROLE, f"The role must be one of: {allowed}.")
        ]


def clean_student_number(raw: str | None) -> str | None:
    """Surrounding whitespace dropped (spreadsheets add it); an empty value is no value."""
    if raw is None:
        return None
    return raw.strip() or None


def student_number_problems(role: Role, student_number: str | None) -> list[ErrorDetail]:
    """A student needs a student number; nobody else may have one (pass it cleaned)."""
    field = "student_number"
    if role is Role.STUDENT:
        if student_number is None:
            return [ErrorDetail(field, DetailCode.REQUIRED, "A student needs a student number.")]
        if len(student_number) > MAX_STUDENT_NUMBER_LENGTH:
            return [
                ErrorDetail(
                    field,
                    DetailCode.TOO_LONG,
                    f"At most {MAX_STUDENT_NUMBER_LENGTH} characters are allowed.",
                )
            ]
        return []
    if student_number is not None:
        return [ErrorDetail(field, DetailCode.NOT_ALLOWED, "Only students have a student number.")]
    return []


def role_change_problems(user: User, new_role: Role) -> list[ErrorDetail]:
    """Moving into or out of the student role would break the student-number rule.

    The number cannot be set or cleared through a change (results keys marks
    by it), so such a user is created anew instead.
    """
    if new_role == user.role:
        return []
    if Role.STUDENT in (new_role, user.role):
        return [
            ErrorDetail(
                "role",
                DetailCode.ROLE_CHANGE_NOT_ALLOWED,
                "A user cannot be moved into or out of the student role.",
            )
        ]
    return []
