"""Users files: ``email,full_name,role,student_number[,password]`` (API.md "Bulk jobs").

Only what the file alone can tell is checked here, with no I/O: the columns,
required cells, the role, a student number for students only, lengths, and
the password policy of auth (:mod:`auth_service.domain.passwords`: 10 to 1024
characters), so that a file is refused before any user is written. The email
gets a basic syntax check only; auth's validator is the authority when the
rows are applied (and a student number taken by someone else is auth's to
report too).

Decisions:

* Header names match as in marks files (any case, surrounding spaces, a stray
  BOM); columns may come in any order; ``password`` is optional.
* Cells are stripped of surrounding spaces, except the password, whose spaces
  are part of it; a password cell holding only spaces is no password, like an
  empty one (the user is invited).
* Every problem of a row is reported; a row with any problem yields no entry.
* An empty role is ``REQUIRED``; a role that is none of admin, examiner,
  student is ``INVALID_ROLE``.
* A password never appears in an error: its errors have the value "".
"""

from __future__ import annotations

from dataclasses import dataclass

from service_kit.detail_codes import DetailCode

from bulk_service.domain.row_errors import (
    FileDetailCode,
    HeaderRejected,
    RowError,
    header_key,
    header_label,
    shown,
)
from bulk_service.domain.sheets import SheetRow

__all__ = [
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "ROLES",
    "UserEntry",
    "UsersHeaderRejected",
    "UsersLayout",
    "read_users_header",
]

REQUIRED_COLUMNS = ("email", "full_name", "role", "student_number")
OPTIONAL_COLUMNS = ("password",)
ROLES = frozenset({"admin", "examiner", "student"})
# auth's limits (auth_service.domain.users and .passwords); not imported, since
# bulk does not depend on auth's package.
MAX_EMAIL_OCTETS = 254
MAX_LOCAL_PART_OCTETS = 64
MAX_FULL_NAME = 200
MAX_STUDENT_NUMBER = 64
MIN_PASSWORD = 10
MAX_PASSWORD = 1024


@dataclass(frozen=True, slots=True)
class UserEntry:
    """One user a users file asks to create or update (idempotent on email)."""

    row: int
    email: str
    full_name: str
    role: str
    """``admin``, ``examiner`` or ``student`` (lower case)."""
    student_number: str | None
    """Students only."""
    password: str | None
    """None: the user is invited to choose one."""


class UsersHeaderRejected(HeaderRejected):
    """The header of a users file cannot be used (a :class:`HeaderRejected`)."""


def _email_problem(email: str) -> str | None:
    """Why ``email`` is no address at all, or None (auth checks the rest)."""
    local, at, domain = email.partition("@")
    if not at or not local or not domain or "@" in domain:
        return "An email address has one @ with text on both sides."
    if any(character.isspace() for character in email):
        return "An email address has no spaces."
    if len(local.encode()) > MAX_LOCAL_PART_OCTETS:
        return f"The part before the @ has at most {MAX_LOCAL_PART_OCTETS} bytes."
    if len(email.encode()) > MAX_EMAIL_OCTETS:
        return f"An email address has at most {MAX_EMAIL_OCTETS} bytes."
    return None


class UsersLayout:
    """Where a users file's columns are, worked out once from its header."""

    def __init__(self, columns: tuple[str, ...], at: dict[str, int]) -> None:
        self.columns = columns
        """The header as the file spells it, padding removed (errors name columns so)."""
        self._width = len(columns)
        self._email_at = at["email"]
        self._name_at = at["full_name"]
        self._role_at = at["role"]
        self._number_at = at["student_number"]
        self._password_at = at.get("password", -1)

    def parse_row(self, row: SheetRow) -> tuple[UserEntry | None, list[RowError]]:
        """The user of one data row, or None and the row's problems."""
        cells = row.cells
        number = row.number
        width = self._width
        errors: list[RowError] = []
        columns = self.columns
        if len(cells) != width:
            if len(cells) < width:
                cells = cells + ("",) * (width - len(cells))
            else:
                for text in cells[width:]:
                    if text and not text.isspace():
                        errors.append(
                            RowError(
                                number,
                                "",
                                DetailCode.NOT_ALLOWED,
                                f"The row has a cell past the header's {width} columns.",
                                shown(text.strip()),
                            )
                        )
                        break

        email = cells[self._email_at].strip()
        column = columns[self._email_at]
        if not email:
            errors.append(RowError(number, column, DetailCode.REQUIRED, "No email address.", ""))
        elif (why := _email_problem(email)) is not None:
            errors.append(RowError(number, column, DetailCode.EMAIL_INVALID, why, shown(email)))

        full_name = cells[self._name_at].strip()
        column = columns[self._name_at]
        if not full_name:
            errors.append(RowError(number, column, DetailCode.REQUIRED, "No full name.", ""))
        elif len(full_name) > MAX_FULL_NAME:
            errors.append(
                RowError(
                    number,
                    column,
                    DetailCode.TOO_LONG,
                    f"A full name has at most {MAX_FULL_NAME} characters.",
                    shown(full_name),
                )
            )

        typed_role = cells[self._role_at].strip()
        role = typed_role.lower()
        column = columns[self._role_at]
        if not role:
            errors.append(RowError(number, column, DetailCode.REQUIRED, "No role.", ""))
        elif role not in ROLES:
            errors.append(
                RowError(
                    number,
                    column,
                    DetailCode.INVALID_ROLE,
                    "The role is admin, examiner or student.",
                    shown(typed_role),
                )
            )

        student_number = cells[self._number_at].strip()
        column = columns[self._number_at]
        if not student_number:
            if role == "student":
                errors.append(
                    RowError(
                        number,
                        column,
                        DetailCode.REQUIRED,
                        "A student needs a student number.",
                        "",
                    )
                )
        elif role in ROLES and role != "student":
            errors.append(
                RowError(
                    number,
                    column,
                    DetailCode.NOT_ALLOWED,
                    "Only students have a student number.",
                    shown(student_number),
                )
            )
        elif len(student_number) > MAX_STUDENT_NUMBER:
            errors.append(
                RowError(
                    number,
                    column,
                    DetailCode.TOO_LONG,
                    f"A student number has at most {MAX_STUDENT_NUMBER} characters.",
                    shown(student_number),
                )
            )

        password: str | None = None
        if self._password_at >= 0:
            text = cells[self._password_at]
            if text and not text.isspace():
                password = text
                column = columns[self._password_at]
                # The value is "" on purpose: a password is never echoed.
                if len(text) < MIN_PASSWORD:
                    errors.append(
                        RowError(
                            number,
                            column,
                            DetailCode.PASSWORD_TOO_SHORT,
                            f"A password has at least {MIN_PASSWORD} characters.",
                            "",
                        )
                    )
                elif len(text) > MAX_PASSWORD:
                    errors.append(
                        RowError(
                            number,
                            column,
                            DetailCode.PASSWORD_TOO_LONG,
                            f"A password has at most {MAX_PASSWORD} characters.",
                            "",
                        )
                    )

        if errors:
            return None, errors
        return UserEntry(number, email, full_name, role, student_number or None, password), errors


def read_users_header(header: SheetRow) -> UsersLayout:
    """The layout of a users file from its header row.

    Raises :class:`UsersHeaderRejected` naming every problem: a missing
    required column, an unknown column, a column given twice, an unnamed
    column between named ones.
    """
    labels = tuple(header_label(name) for name in header.cells)
    number = header.number
    at: dict[str, int] = {}
    errors: list[RowError] = []
    for index, label in enumerate(labels):
        key = header_key(label)
        if not key:
            errors.append(
                RowError(
                    number,
                    "",
                    DetailCode.REQUIRED,
                    f"Column {index + 1} of the header has no name.",
                    "",
                )
            )
        elif key in at:
            errors.append(
                RowError(
                    number,
                    label,
                    DetailCode.DUPLICATE_ENTRY,
                    f"The column {label!r} appears twice in the header.",
                    shown(label),
                )
            )
        elif key in REQUIRED_COLUMNS or key in OPTIONAL_COLUMNS:
            at[key] = index
        else:
            errors.append(
                RowError(
                    number,
                    label,
                    FileDetailCode.UNKNOWN_COLUMN,
                    f"Unknown column {label!r}: a users file has the columns email, "
                    "full_name, role, student_number and optionally password.",
                    shown(label),
                )
            )
    for name in REQUIRED_COLUMNS:
        if name not in at:
            errors.append(
                RowError(
                    number,
                    name,
                    DetailCode.REQUIRED,
                    f"The header has no {name} column.",
                    "",
                )
            )
    if errors:
        raise UsersHeaderRejected(errors)
    return UsersLayout(labels, at)
