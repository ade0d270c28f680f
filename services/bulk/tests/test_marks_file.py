"""Marks file rules: header shapes, mark cells, row errors (API.md "Bulk jobs").

Rows are built by hand (the readers have their own tests) except in the end to
end cases, which read real CSV bytes (semicolons and decimal commas, UTF-16
tab files) and a workbook through the readers, as an upload would be.
"""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from bulk_service.domain.csv_reading import CsvReader
from bulk_service.domain.marks_file import (
    ExamSubject,
    HeaderRejected,
    MarkCellError,
    MarkEntry,
    MarksLayout,
    Shape,
    entry_key,
    parse_mark_cell,
    read_marks_header,
    template_header,
)
from bulk_service.domain.row_errors import FileDetailCode, RowError
from bulk_service.domain.sheets import SheetRow
from bulk_service.domain.xlsx_reading import read_xlsx_rows
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook

SUBJECTS = [
    ExamSubject("MATH", Decimal(100)),
    ExamSubject("Phys", Decimal("50.5")),
    ExamSubject("chem", Decimal(20)),
]


def header(*cells: str) -> SheetRow:
    return SheetRow(1, cells)


def layout(*cells: str) -> MarksLayout:
    return read_marks_header(header(*cells), SUBJECTS)


LONG = ("student_number", "subject_code", "mark")
WIDE = ("student_number", "MATH", "Phys", "chem")


def rejected(*cells: str) -> list[RowError]:
    with pytest.raises(HeaderRejected) as caught:
        layout(*cells)
    return caught.value.errors


def codes(errors: list[RowError]) -> list[tuple[str, str]]:
    return [(error.column, error.code) for error in errors]


def csv_rows(data: bytes) -> list[SheetRow]:
    reader = CsvReader()
    return [*reader.feed(data), *reader.finish()]


# -- header -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cells",
    [
        LONG,
        ("Student_Number", "SUBJECT_CODE", "Mark"),
        (" student_number ", "\ufeffsubject_code", "mark\u00a0"),
        ("\ufeffstudent_number", "subject_code", "mark"),
        ("mark", "student_number", "subject_code"),
    ],
)
def test_long_headers_any_case_padding_and_order(cells: tuple[str, ...]) -> None:
    found = layout(*cells)
    assert found.shape is Shape.LONG
    student_at = [c.strip(" \ufeff\u00a0").lower() for c in cells].index("student_number")
    row = ["", "", ""]
    row[student_at] = "S1"
    row[[c.strip(" \ufeff\u00a0").lower() for c in cells].index("subject_code")] = "math"
    row[[c.strip(" \ufeff\u00a0").lower() for c in cells].index("mark")] = "70"
    assert found.parse_row(SheetRow(2, tuple(row))) == (
        [MarkEntry(2, "S1", "MATH", "present", Decimal(70))],
        [],
    )


def test_wide_header_matches_codes_case_insensitively_and_keeps_the_exam_spelling() -> None:
    found = layout(" STUDENT_NUMBER", "phys ", "Math")
    assert found.shape is Shape.WIDE
    assert found.columns == ("STUDENT_NUMBER", "phys", "Math")
    assert found.mark_columns == (1, 2)
    entries, errors = found.parse_row(SheetRow(2, ("S1", "40", "AB")))
    assert errors == []
    assert entries == [
        MarkEntry(2, "S1", "Phys", "present", Decimal(40)),
        MarkEntry(2, "S1", "MATH", "absent", None),
    ]


def test_wide_header_may_name_some_subjects_only() -> None:
    assert layout("student_number", "chem").mark_columns == (1,)


def test_missing_student_number_is_named() -> None:
    assert codes(rejected("subject_code", "mark")) == [("student_number", "REQUIRED")]
    assert codes(rejected("MATH", "Phys")) == [("student_number", "REQUIRED")]


def test_long_header_missing_mark_or_subject_code() -> None:
    assert codes(rejected("student_number", "subject_code")) == [("mark", "REQUIRED")]
    assert codes(rejected("student_number", "mark")) == [("subject_code", "REQUIRED")]


def test_unknown_column_in_long_header() -> None:
    errors = rejected("student_number", "subject_code", "mark", "Name")
    assert codes(errors) == [("Name", FileDetailCode.UNKNOWN_COLUMN)]
    assert errors[0].row == 1
    assert errors[0].value == "Name"
    assert "'Name'" in errors[0].message


def test_unknown_subject_in_wide_header() -> None:
    errors = rejected("student_number", "MATH", "BIO ")
    assert codes(errors) == [("BIO", "SUBJECT_NOT_FOUND")]
    assert "'BIO'" in errors[0].message


def test_column_given_twice() -> None:
    assert codes(rejected("student_number", "MATH", "math")) == [("math", "DUPLICATE_ENTRY")]
    assert codes(rejected("student_number", "subject_code", "mark", " Mark")) == [
        ("Mark", "DUPLICATE_ENTRY")
    ]


def test_unnamed_column_between_columns() -> None:
    errors = rejected("student_number", "", "MATH")
    assert codes(errors) == [("", "REQUIRED")]
    assert "Column 2" in errors[0].message


def test_wide_header_without_subject_columns() -> None:
    assert codes(rejected("student_number")) == [("", "REQUIRED")]


def test_every_header_problem_is_reported_with_a_readable_message() -> None:
    with pytest.raises(HeaderRejected) as caught:
        layout("MATH", "MATH", "", "bio")
    assert codes(caught.value.errors) == [
        ("MATH", "DUPLICATE_ENTRY"),
        ("", "REQUIRED"),
        ("student_number", "REQUIRED"),
        ("bio", "SUBJECT_NOT_FOUND"),
    ]
    assert "student_number" in str(caught.value)
    assert "'bio'" in str(caught.value)


def test_a_subject_coded_mark_makes_a_wide_header() -> None:
    subjects = [ExamSubject("Mark", Decimal(10))]
    found = read_marks_header(header("student_number", "mark"), subjects)
    assert found.shape is Shape.WIDE
    assert found.parse_row(SheetRow(2, ("S1", "9")))[0][0].subject_code == "Mark"


def test_template_headers() -> None:
    assert template_header(Shape.LONG, SUBJECTS) == ["student_number", "subject_code", "mark"]
    assert template_header(Shape.WIDE, SUBJECTS) == ["student_number", "MATH", "Phys", "chem"]
    # A template reads back as its own shape.
    for shape in Shape:
        assert read_marks_header(header(*template_header(shape, SUBJECTS)), SUBJECTS).shape is shape


# -- mark cells ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "status", "mark"),
    [
        ("79", "present", Decimal(79)),
        ("79.5", "present", Decimal("79.5")),
        ("79,5", "present", Decimal("79.5")),
        (" 79,25 ", "present", Decimal("79.25")),
        ("\u00a079.5\t", "present", Decimal("79.5")),
        ("0", "present", Decimal(0)),
        ("-0", "present", Decimal(0)),
        ("007", "present", Decimal(7)),
        (".5", "present", Decimal("0.5")),
        ("5.", "present", Decimal(5)),
        ("12.340", "present", Decimal("12.34")),
        ("12,5000", "present", Decimal("12.5")),
        ("AB", "absent", None),
        ("ab", "absent", None),
        (" Ab ", "absent", None),
        ("EX", "exempt", None),
        ("Ex", "exempt", None),
        ("ex", "exempt", None),
    ],
)
def test_mark_cells(text: str, status: str, mark: Decimal | None) -> None:
    assert parse_mark_cell(text) == (status, mark)


def test_normalised_marks_keep_at_most_two_places() -> None:
    _, mark = parse_mark_cell("12.340")
    assert mark is not None and mark.as_tuple().exponent == -2
    assert str(parse_mark_cell("79,5")[1]) == "79.5"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "MARK_REQUIRED"),
        ("   ", "MARK_REQUIRED"),
        ("-1", "MARK_OUT_OF_RANGE"),
        ("-0,5", "MARK_OUT_OF_RANGE"),
        ("79.555", "TOO_MANY_DECIMALS"),
        ("79,001", "TOO_MANY_DECIMALS"),
        ("1,234", "TOO_MANY_DECIMALS"),  # a decimal comma, not a thousands separator
        ("1,234.5", "NOT_A_NUMBER"),
        ("1.234,5", "NOT_A_NUMBER"),
        ("1 234", "NOT_A_NUMBER"),
        ("1'234", "NOT_A_NUMBER"),
        ("NaN", "NOT_A_NUMBER"),
        ("nan", "NOT_A_NUMBER"),
        ("inf", "NOT_A_NUMBER"),
        ("Infinity", "NOT_A_NUMBER"),
        ("-inf", "NOT_A_NUMBER"),
        ("1e2", "NOT_A_NUMBER"),
        ("+5", "NOT_A_NUMBER"),
        ("--5", "NOT_A_NUMBER"),
        ("5-", "NOT_A_NUMBER"),
        (".", "NOT_A_NUMBER"),
        ("-", "NOT_A_NUMBER"),
        ("1.2.3", "NOT_A_NUMBER"),
        ("1_000", "NOT_A_NUMBER"),
        ("\u0667", "NOT_A_NUMBER"),  # an Arabic-Indic digit
        ("\u00b2", "NOT_A_NUMBER"),  # superscript two: isdigit() says yes
        ("A", "NOT_A_NUMBER"),
        ("ABS", "NOT_A_NUMBER"),
        ("absent", "NOT_A_NUMBER"),
        ("75%", "NOT_A_NUMBER"),
        ("TRUE", "NOT_A_NUMBER"),
    ],
)
def test_bad_mark_cells(text: str, code: str) -> None:
    with pytest.raises(MarkCellError) as caught:
        parse_mark_cell(text)
    assert caught.value.code == code


@given(
    st.decimals(min_value=0, max_value=Decimal("99999999.99"), places=2, allow_nan=False),
    st.sampled_from([".", ","]),
    st.sampled_from(["", " ", "\t"]),
)
def test_two_place_marks_round_trip(value: Decimal, point: str, pad: str) -> None:
    text = pad + format(value, "f").replace(".", point) + pad
    assert parse_mark_cell(text) == ("present", value)


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**6), places=2))
def test_negative_marks_are_out_of_range(value: Decimal) -> None:
    with pytest.raises(MarkCellError) as caught:
        parse_mark_cell("-" + format(value, "f"))
    assert caught.value.code == "MARK_OUT_OF_RANGE"


@given(st.text(max_size=12))
def test_any_text_is_a_mark_or_a_mark_cell_error(text: str) -> None:
    try:
        status, mark = parse_mark_cell(text)
    except MarkCellError:
        return
    assert (status == "present") == (mark is not None)
    if mark is not None:
        assert mark >= 0 and mark.is_finite() and mark.as_tuple().exponent >= -2


# -- long rows ----------------------------------------------------------------------


def test_long_row_entries() -> None:
    found = layout(*LONG)
    assert found.parse_row(SheetRow(2, (" S1 ", " math ", " 79,5 "))) == (
        [MarkEntry(2, "S1", "MATH", "present", Decimal("79.5"))],
        [],
    )
    assert found.parse_row(SheetRow(3, ("S1", "PHYS", "ab"))) == (
        [MarkEntry(3, "S1", "Phys", "absent", None)],
        [],
    )
    assert found.parse_row(SheetRow(4, ("S1", "Chem", "Ex"))) == (
        [MarkEntry(4, "S1", "chem", "exempt", None)],
        [],
    )


def test_long_row_mark_at_the_maximum_and_above_it() -> None:
    found = layout(*LONG)
    assert found.parse_row(SheetRow(2, ("S1", "Phys", "50,5")))[0][0].mark == Decimal("50.5")
    entries, errors = found.parse_row(SheetRow(3, ("S1", "Phys", "50.51")))
    assert entries == []
    assert errors == [
        RowError(3, "mark", "MARK_OUT_OF_RANGE", "The mark must be between 0 and 50.5.", "50.51")
    ]


def test_long_row_empty_mark_is_required() -> None:
    found = layout(*LONG)
    for cells in [("S1", "MATH", ""), ("S1", "MATH", "  "), ("S1", "MATH")]:
        entries, errors = found.parse_row(SheetRow(7, cells))
        assert entries == []
        assert [(e.row, e.column, e.code, e.value) for e in errors] == [
            (7, "mark", "MARK_REQUIRED", "")
        ]


def test_long_row_errors_name_columns_as_the_file_spells_them() -> None:
    found = layout("Mark", " Student_Number", "SUBJECT_CODE")
    entries, errors = found.parse_row(SheetRow(9, ("x1", "", "BIO")))
    assert entries == []
    assert [(e.row, e.column, e.code, e.value) for e in errors] == [
        (9, "Student_Number", "REQUIRED", ""),
        (9, "SUBJECT_CODE", "SUBJECT_NOT_FOUND", "BIO"),
        (9, "Mark", "NOT_A_NUMBER", "x1"),
    ]


def test_long_row_every_problem_is_reported() -> None:
    found = layout(*LONG)
    entries, errors = found.parse_row(SheetRow(5, ("S" * 65, "", "-3")))
    assert entries == []
    assert codes(errors) == [
        ("student_number", "TOO_LONG"),
        ("subject_code", "REQUIRED"),
        ("mark", "MARK_OUT_OF_RANGE"),
    ]


def test_long_row_over_long_cells() -> None:
    found = layout(*LONG)
    assert found.parse_row(SheetRow(2, ("S" * 64, "MATH", "1")))[1] == []
    _, errors = found.parse_row(SheetRow(2, ("S1", "M" * 65, "1")))
    assert codes(errors) == [("subject_code", "TOO_LONG")]
    _, errors = found.parse_row(SheetRow(2, ("S" * 500, "MATH", "1")))
    assert codes(errors) == [("student_number", "TOO_LONG")]
    assert errors[0].value == "S" * 200


def test_long_row_bad_mark_with_unknown_subject_reports_both() -> None:
    _, errors = layout(*LONG).parse_row(SheetRow(2, ("S1", "BIO", "1.234")))
    assert codes(errors) == [("subject_code", "SUBJECT_NOT_FOUND"), ("mark", "TOO_MANY_DECIMALS")]


def test_long_row_with_extra_cells() -> None:
    found = layout(*LONG)
    entries, errors = found.parse_row(SheetRow(4, ("S1", "MATH", "70", "", "oops")))
    assert entries == []
    assert errors == [
        RowError(4, "", "NOT_ALLOWED", "The row has a cell past the header's 3 columns.", "oops")
    ]
    # Blank cells past the header are no problem.
    assert found.parse_row(SheetRow(4, ("S1", "MATH", "70", " ")))[1] == []


def test_subject_spellings_are_remembered_without_mixing_them_up() -> None:
    found = layout(*LONG)
    for _ in range(3):
        for spelling, code in [("math", "MATH"), (" PHYS", "Phys"), ("CHEM ", "chem")]:
            assert found.parse_row(SheetRow(2, ("S1", spelling, "AB")))[0][0].subject_code == code
        assert codes(found.parse_row(SheetRow(2, ("S1", "bio", "AB")))[1]) == [
            ("subject_code", "SUBJECT_NOT_FOUND")
        ]


def test_remembered_marks_are_still_checked_against_each_maximum() -> None:
    found = layout(*LONG)
    assert found.parse_row(SheetRow(2, ("S1", "MATH", "30")))[1] == []
    assert codes(found.parse_row(SheetRow(3, ("S1", "chem", "30")))[1]) == [
        ("mark", "MARK_OUT_OF_RANGE")
    ]


# -- wide rows ----------------------------------------------------------------------


def test_wide_row_entries_and_empty_cells() -> None:
    found = layout(*WIDE)
    entries, errors = found.parse_row(SheetRow(2, (" S1", "75", "", "ab")))
    assert errors == []
    assert entries == [
        MarkEntry(2, "S1", "MATH", "present", Decimal(75)),
        MarkEntry(2, "S1", "chem", "absent", None),
    ]
    # Trailing empty cells are trimmed by the readers: shorter rows are fine.
    assert found.parse_row(SheetRow(3, ("S2", " ", "EX"))) == (
        [MarkEntry(3, "S2", "Phys", "exempt", None)],
        [],
    )
    assert found.parse_row(SheetRow(4, ("S3",))) == ([], [])


def test_wide_row_bad_cell_fails_only_itself() -> None:
    found = layout(*WIDE)
    entries, errors = found.parse_row(SheetRow(6, ("S1", "101", "49,5", "x")))
    assert entries == [MarkEntry(6, "S1", "Phys", "present", Decimal("49.5"))]
    assert [(e.row, e.column, e.code, e.value) for e in errors] == [
        (6, "MATH", "MARK_OUT_OF_RANGE", "101"),
        (6, "chem", "NOT_A_NUMBER", "x"),
    ]


def test_wide_row_errors_use_the_file_spelling_of_the_column() -> None:
    found = layout("student_number", "math")
    _, errors = found.parse_row(SheetRow(2, ("S1", "-2")))
    assert codes(errors) == [("math", "MARK_OUT_OF_RANGE")]


def test_wide_row_without_student_number_fails_every_filled_cell() -> None:
    found = layout(*WIDE)
    entries, errors = found.parse_row(SheetRow(3, ("", "70", "", "1,234")))
    assert entries == []
    assert codes(errors) == [("student_number", "REQUIRED"), ("chem", "TOO_MANY_DECIMALS")]
    entries, errors = found.parse_row(SheetRow(4, ("S" * 65, "70")))
    assert entries == []
    assert codes(errors) == [("student_number", "TOO_LONG")]


def test_wide_row_with_extra_cells_yields_nothing() -> None:
    found = layout(*WIDE)
    entries, errors = found.parse_row(SheetRow(8, ("S1", "70", "", "", "12")))
    assert entries == []
    assert errors == [
        RowError(8, "", "NOT_ALLOWED", "The row has a cell past the header's 4 columns.", "12")
    ]


def test_error_values_are_cut_to_200_characters() -> None:
    found = layout(*WIDE)
    _, errors = found.parse_row(SheetRow(2, ("S1", "9" * 5000)))
    assert errors[0].code == "MARK_OUT_OF_RANGE"
    assert errors[0].value == "9" * 200


def test_entry_key() -> None:
    entry = MarkEntry(2, " S1 ", "MATH", "present", Decimal(1))
    assert entry_key(entry) == ("S1", "MATH")
    long_entry = layout(*LONG).parse_row(SheetRow(2, ("S1", "math", "1")))[0][0]
    wide_entry = layout(*WIDE).parse_row(SheetRow(3, ("S1 ", "AB")))[0][0]
    assert entry_key(long_entry) == entry_key(wide_entry)


# -- files end to end ---------------------------------------------------------------


def _entries(rows: list[SheetRow]) -> tuple[list[MarkEntry], list[RowError]]:
    found = read_marks_header(rows[0], SUBJECTS)
    entries: list[MarkEntry] = []
    errors: list[RowError] = []
    for row in rows[1:]:
        row_entries, row_errors = found.parse_row(row)
        entries += row_entries
        errors += row_errors
    return entries, errors


def test_semicolon_csv_with_decimal_commas_and_bom() -> None:
    data = (
        "\ufeffStudent_Number;Subject_Code;Mark\r\n"
        "S1;MATH;79,5\r\n"
        "\r\n"
        "S2;phys;ab\r\n"
        '"S3";chem;"12,345"\r\n'
    ).encode()
    entries, errors = _entries(csv_rows(data))
    assert entries == [
        MarkEntry(2, "S1", "MATH", "present", Decimal("79.5")),
        MarkEntry(4, "S2", "Phys", "absent", None),
    ]
    assert [(e.row, e.column, e.code) for e in errors] == [(5, "Mark", "TOO_MANY_DECIMALS")]


def test_utf16_tab_separated_wide_file() -> None:
    text = "student_number\tMATH\tPHYS\tchem\r\nS1\t80,5\t\tEX\r\nS2\t\t51\r\n"
    entries, errors = _entries(csv_rows(text.encode("utf-16")))
    assert entries == [
        MarkEntry(2, "S1", "MATH", "present", Decimal("80.5")),
        MarkEntry(2, "S1", "chem", "exempt", None),
    ]
    assert [(e.row, e.column, e.code, e.value) for e in errors] == [
        (3, "PHYS", "MARK_OUT_OF_RANGE", "51")
    ]


def test_workbook_with_numeric_cells() -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for values in [
        ["student_number", "subject_code", "mark"],
        ["S1", "MATH", 72.5],
        ["S2", "MATH", 0.1 + 0.2],
        ["S3", "MATH", "AB"],
        ["S4", "MATH", 12.345],
    ]:
        sheet.append(values)
    out = io.BytesIO()
    workbook.save(out)
    out.seek(0)
    entries, errors = _entries(list(read_xlsx_rows(out)))
    assert [(e.row, e.mark) for e in entries] == [
        (2, Decimal("72.5")),
        (3, Decimal("0.3")),
        (4, None),
    ]
    assert [(e.row, e.code) for e in errors] == [(5, "TOO_MANY_DECIMALS")]
