"""Users: roles, and the rules a new user or a change must follow."""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import email_validator
from email_validator import EmailNotValidError, validate_email
from service_kit.errors import DetailCode, ErrorDetail

# RFC 5321 4.5.3.1, in octets of the address as stored (UTF-8).
MAX_EMAIL_LENGTH = 254
MAX_LOCAL_PART_LENGTH = 64
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
    # Raised when every access token issued so far must end (deactivation, role
    # change); tokens carry the epoch they were issued in.
    access_epoch: int = 0


# email-validator refuses special-use names (RFC 6761, 6762) because it assumes
# globally deliverable addresses; schools run mail on internal names such as
# school.local or mail.test. Taken off its list the way its README documents
# (auth is the only user of the library in its process); `.invalid`,
# `localhost`, `.onion` and `.arpa` stay refused, and dotless domains
# (`x@localhost`) too.
INTERNAL_MAIL_TLDS = ("local", "test")
for _tld in INTERNAL_MAIL_TLDS:
    if _tld in email_validator.SPECIAL_USE_DOMAIN_NAMES:
        email_validator.SPECIAL_USE_DOMAIN_NAMES.remove(_tld)


@dataclass(frozen=True, slots=True)
class EmailAddress:
    """A valid address: as stored and shown, and the key it is unique under."""

    # As entered, normalized by email-validator: domain lower-cased (IDNA),
    # local part as typed (NFC). What the user sees and mail is sent to.
    address: str
    # canonical_email(address): what uniqueness, lookup and sign-in compare.
    canonical: str


def canonical_email(address: str) -> str:
    """The form in which two addresses are the same account: NFKC, case folding, NFKC.

    Lookalikes made of compatibility characters (a fullwidth ``s``, U+FF53, or
    a mathematical bold one, U+1D42C) or in another letter case fold to one
    form, ``ß`` to ``ss``, and a letter with a combining accent to the
    precomposed one. Done in Python, not
    by Postgres ``lower()``, whose result depends on the database's collation
    (it turned ``İnfo`` into ``info``); full case folding keeps ``İ`` apart
    (``i̇``, an i with a combining dot).
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", address).casefold())


def email_key(raw: str) -> str:
    """The canonical form of an address someone typed (sign-in, limits, lookups).

    The same rule as for storage: the address as :func:`parsed_email` would
    store it, folded by :func:`canonical_email`. What is no valid address is
    folded as typed (it matches no account made since the rule exists, and
    still the ones made before with an address refused today).
    """
    typed = raw.strip()
    if typed.isascii() and "xn--" not in typed.lower():
        # For ASCII without IDNA labels, validation changes nothing the folding
        # does not (letter case of the domain), so sign-in skips its cost.
        return canonical_email(typed)
    parsed, _ = parsed_email("email", typed)
    return parsed.canonical if parsed is not None else canonical_email(typed)


def _invalid(field: str, message: str) -> tuple[None, list[ErrorDetail]]:
    return None, [ErrorDetail(field, DetailCode.EMAIL_INVALID, message)]


def parsed_email(field: str, raw: str) -> tuple[EmailAddress | None, list[ErrorDetail]]:
    """The address as stored and its canonical form, or what is wrong with it.

    RFC 5321 lengths are checked in octets: at most 64 before the ``@``, 254
    in all; the domain's 253 (255 with the brackets SMTP adds) email-validator
    checks on its IDNA form.
    """
    try:
        valid = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        return _invalid(field, str(exc))
    local_octets = len(valid.local_part.encode("utf-8"))
    if local_octets > MAX_LOCAL_PART_LENGTH:
        return _invalid(
            field,
            f"The part before the @-sign is {local_octets} bytes long; "
            f"at most {MAX_LOCAL_PART_LENGTH} are allowed.",
        )
    if len(valid.normalized.encode("utf-8")) > MAX_EMAIL_LENGTH:
        return _invalid(field, f"At most {MAX_EMAIL_LENGTH} bytes are allowed.")
    canonical = canonical_email(valid.normalized)
    # Compatibility characters can expand (U+FDFA is 18 letters): the key is
    # bounded too, so that it fits its index and a list cursor.
    if len(canonical.encode("utf-8")) > MAX_EMAIL_LENGTH:
        return _invalid(field, f"At most {MAX_EMAIL_LENGTH} bytes are allowed once normalized.")
    return EmailAddress(valid.normalized, canonical), []


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
