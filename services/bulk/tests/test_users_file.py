"""Users file rules: the header, each row's user, and that passwords never leak."""

from __future__ import annotations

import pytest
from bulk_service.domain.csv_reading import CsvReader
from bulk_service.domain.row_errors import FileDetailCode, HeaderRejected, RowError
from bulk_service.domain.sheets import SheetRow
from bulk_service.domain.users_file import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    UserEntry,
    UsersHeaderRejected,
    UsersLayout,
    read_users_header,
)

COLUMNS = ("email", "full_name", "role", "student_number", "password")
PASSWORD = "correct horse battery"


def layout(*cells: str) -> UsersLayout:
    return read_users_header(SheetRow(1, cells or COLUMNS))


def rejected(*cells: str) -> list[RowError]:
    with pytest.raises(UsersHeaderRejected) as caught:
        layout(*cells)
    return caught.value.errors


def codes(errors: list[RowError]) -> list[tuple[str, str]]:
    return [(error.column, error.code) for error in errors]


def parse(*cells: str, number: int = 2) -> tuple[UserEntry | None, list[RowError]]:
    return layout().parse_row(SheetRow(number, cells))


# -- header -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cells",
    [
        COLUMNS,
        COLUMNS[:4],
        ("EMAIL", " Full_Name ", "Role\u00a0", "\ufeffstudent_number"),
        ("student_number", "role", "password", "full_name", "email"),
    ],
)
def test_headers_any_case_padding_and_order(cells: tuple[str, ...]) -> None:
    found = layout(*cells)
    keys = [c.strip(" \u00a0\ufeff").lower() for c in cells]
    row = [""] * len(cells)
    row[keys.index("email")] = "ann@example.org"
    row[keys.index("full_name")] = "Ann Example"
    row[keys.index("role")] = "Student"
    row[keys.index("student_number")] = "S1"
    entry, errors = found.parse_row(SheetRow(2, tuple(row)))
    assert errors == []
    assert entry == UserEntry(2, "ann@example.org", "Ann Example", "student", "S1", None)


def test_missing_required_columns_are_named() -> None:
    errors = rejected("email", "role")
    assert codes(errors) == [("full_name", "REQUIRED"), ("student_number", "REQUIRED")]
    assert all(error.row == 1 for error in errors)
    assert "full_name" in str(UsersHeaderRejected(errors))


def test_unknown_duplicate_and_unnamed_columns() -> None:
    errors = rejected("email", "full_name", "Role", "student_number", "phone", "ROLE", "", "x")
    assert codes(errors) == [
        ("phone", FileDetailCode.UNKNOWN_COLUMN),
        ("ROLE", "DUPLICATE_ENTRY"),
        ("", "REQUIRED"),
        ("x", FileDetailCode.UNKNOWN_COLUMN),
    ]
    assert "'phone'" in errors[0].message


def test_users_header_rejection_is_a_header_rejection() -> None:
    with pytest.raises(HeaderRejected):
        layout("email")


# -- rows ---------------------------------------------------------------------------


def test_valid_rows() -> None:
    assert parse(" ann@example.org ", " Ann ", "ADMIN", "", PASSWORD) == (
        UserEntry(2, "ann@example.org", "Ann", "admin", None, PASSWORD),
        [],
    )
    assert parse("bo@example.org", "Bo", "Examiner") == (
        UserEntry(2, "bo@example.org", "Bo", "examiner", None, None),
        [],
    )
    assert parse("cy@example.org", "Cy", "student", " S9 ", "") == (
        UserEntry(2, "cy@example.org", "Cy", "student", "S9", None),
        [],
    )


def test_password_keeps_its_spaces_and_a_blank_one_is_none() -> None:
    entry, _ = parse("a@example.org", "A", "admin", "", f"  {PASSWORD} ")
    assert entry is not None and entry.password == f"  {PASSWORD} "
    entry, _ = parse("a@example.org", "A", "admin", "", "   ")
    assert entry is not None and entry.password is None


@pytest.mark.parametrize(
    "email",
    [
        "no-at-sign",
        "@example.org",
        "ann@",
        "a@b@example.org",
        "ann smith@example.org",
        "ann@exa\tmple.org",
        "a" * 65 + "@example.org",
        "a@" + "b" * 250 + ".org",
    ],
)
def test_invalid_emails(email: str) -> None:
    entry, errors = parse(email, "Ann", "admin")
    assert entry is None
    assert [(e.row, e.column, e.code, e.value) for e in errors] == [
        (2, "email", "EMAIL_INVALID", email[:200])
    ]


def test_longest_email_is_accepted() -> None:
    email = "a" * 64 + "@" + "b" * 185 + ".org"
    assert len(email) == 254
    assert parse(email, "Ann", "admin")[1] == []


def test_required_cells() -> None:
    entry, errors = parse("", " ", "", number=7)
    assert entry is None
    assert [(e.row, e.column, e.code, e.value) for e in errors] == [
        (7, "email", "REQUIRED", ""),
        (7, "full_name", "REQUIRED", ""),
        (7, "role", "REQUIRED", ""),
    ]


def test_full_name_length() -> None:
    assert parse("a@example.org", "N" * 200, "admin")[1] == []
    entry, errors = parse("a@example.org", "N" * 201, "admin")
    assert entry is None
    assert codes(errors) == [("full_name", "TOO_LONG")]
    assert errors[0].value == "N" * 200


@pytest.mark.parametrize("role", ["teacher", "Admins", "root"])
def test_invalid_role(role: str) -> None:
    entry, errors = parse("a@example.org", "A", role)
    assert entry is None
    assert [(e.column, e.code, e.value) for e in errors] == [("role", "INVALID_ROLE", role)]


def test_student_number_only_for_students() -> None:
    _, errors = parse("a@example.org", "A", "student", " ")
    assert codes(errors) == [("student_number", "REQUIRED")]
    for role in ("admin", "Examiner"):
        entry, errors = parse("a@example.org", "A", role, "S1")
        assert entry is None
        assert [(e.column, e.code, e.value) for e in errors] == [
            ("student_number", "NOT_ALLOWED", "S1")
        ]


def test_student_number_length() -> None:
    assert parse("a@example.org", "A", "student", "S" * 64)[1] == []
    _, errors = parse("a@example.org", "A", "student", "S" * 65)
    assert codes(errors) == [("student_number", "TOO_LONG")]
    # With an unknown role the length is still checked.
    _, errors = parse("a@example.org", "A", "boss", "S" * 65)
    assert codes(errors) == [("role", "INVALID_ROLE"), ("student_number", "TOO_LONG")]


def test_password_policy_matches_auth() -> None:
    assert (MIN_PASSWORD, MAX_PASSWORD) == (10, 1024)
    assert parse("a@example.org", "A", "admin", "", "p" * MIN_PASSWORD)[1] == []
    assert parse("a@example.org", "A", "admin", "", "p" * MAX_PASSWORD)[1] == []
    for password, code in [
        ("p" * (MIN_PASSWORD - 1), "PASSWORD_TOO_SHORT"),
        ("p" * (MAX_PASSWORD + 1), "PASSWORD_TOO_LONG"),
    ]:
        entry, errors = parse("a@example.org", "A", "admin", "", password)
        assert entry is None
        assert errors == [RowError(2, "password", code, errors[0].message, "")]


def test_policy_constants_are_auths() -> None:
    auth = pytest.importorskip("auth_service.domain.passwords")
    assert (MIN_PASSWORD, MAX_PASSWORD) == (auth.MIN_PASSWORD_LENGTH, auth.MAX_PASSWORD_LENGTH)


def test_a_password_never_appears_in_an_error() -> None:
    secret = "s3cr3t!"
    entry, errors = parse("", "", "boss", "S1", secret)
    assert entry is None
    assert "PASSWORD_TOO_SHORT" in [e.code for e in errors]
    for error in errors:
        assert secret not in error.value and secret not in error.message


def test_every_problem_of_a_row_is_reported() -> None:
    _, errors = parse("bad", "", "ADMIN", "S1", "short", number=11)
    assert [(e.row, e.column, e.code) for e in errors] == [
        (11, "email", "EMAIL_INVALID"),
        (11, "full_name", "REQUIRED"),
        (11, "student_number", "NOT_ALLOWED"),
        (11, "password", "PASSWORD_TOO_SHORT"),
    ]


def test_extra_cells() -> None:
    found = layout(*COLUMNS[:4])
    entry, errors = found.parse_row(SheetRow(3, ("a@example.org", "A", "admin", "", "", "x")))
    assert entry is None
    assert errors == [
        RowError(3, "", "NOT_ALLOWED", "The row has a cell past the header's 4 columns.", "x")
    ]
    entry, errors = found.parse_row(SheetRow(3, ("a@example.org", "A", "admin", "", " ")))
    assert entry is not None and errors == []


def test_a_password_in_an_extra_cell_is_not_shown_whole() -> None:
    # Without a password column, a password typed past the header is a stray cell; it
    # is shown (the file put it where no password belongs) but cut like any value.
    found = layout(*COLUMNS[:4])
    _, errors = found.parse_row(SheetRow(3, ("a@example.org", "A", "admin", "", "x" * 300)))
    assert errors[0].value == "x" * 200


def test_errors_use_the_file_spelling_of_columns() -> None:
    found = layout(" EMAIL", "Full_Name", "Role", "Student_Number", "Password")
    _, errors = found.parse_row(SheetRow(2, ("x", "", "?", "", "p")))
    assert [e.column for e in errors] == ["EMAIL", "Full_Name", "Role", "Password"]


def test_semicolon_csv_end_to_end() -> None:
    data = (
        "\ufeffEmail;Full_Name;Role;Student_Number;Password\r\n"
        "ann@example.org;Ann Ö;student;S1;\r\n"
        "bo@example.org;Bo;EXAMINER;;long enough password\r\n"
        "cy@example.org;Cy;student;;short\r\n"
    ).encode()
    reader = CsvReader()
    rows = [*reader.feed(data), *reader.finish()]
    found = read_users_header(rows[0])
    results = [found.parse_row(row) for row in rows[1:]]
    assert results[0] == (UserEntry(2, "ann@example.org", "Ann Ö", "student", "S1", None), [])
    assert results[1] == (
        UserEntry(3, "bo@example.org", "Bo", "examiner", None, "long enough password"),
        [],
    )
    assert results[2][0] is None
    assert [(e.row, e.column, e.code, e.value) for e in results[2][1]] == [
        (4, "Student_Number", "REQUIRED", ""),
        (4, "Password", "PASSWORD_TOO_SHORT", ""),
    ]


def test_utf16_tab_file_end_to_end() -> None:
    text = "email\tfull_name\trole\tstudent_number\r\nann@example.org\tAnn\tStudent\tS1\r\n"
    reader = CsvReader()
    rows = [*reader.feed(text.encode("utf-16")), *reader.finish()]
    assert read_users_header(rows[0]).parse_row(rows[1]) == (
        UserEntry(2, "ann@example.org", "Ann", "student", "S1", None),
        [],
    )
