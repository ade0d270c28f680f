"""Export writers: results lines to rows, rows to CSV and XLSX bytes, import templates."""

from __future__ import annotations

import csv
import io
import json
import time
import tracemalloc
import warnings
import zipfile
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from bulk_service.domain.csv_writing import CsvWriter, cell_text, two_decimals
from bulk_service.domain.export_rows import (
    FIXED_COLUMNS,
    BadResultLine,
    Cell,
    export_columns,
    export_row,
    export_rows,
    parse_result_line,
    rows_function,
)
from bulk_service.domain.templates import template_csv, template_xlsx
from bulk_service.domain.xlsx_writing import XlsxWriter, column_letter, sheet_title
from openpyxl import load_workbook

MiB = 1024 * 1024
TRIGGERS = ["=", "+", "-", "@", "\t", "\r"]
CODES = ["MATH", "PHYS", "CHEM", "BIO"]


def result_line(**overrides: Any) -> bytes:
    """A results line as PostgreSQL's json_build_object writes it (NUMERIC keeps .50)."""
    fields = {
        "exam_id": "3f1c7a5e-0000-4000-8000-000000000001",
        "student_number": "S001",
        "student_name": "Zoë Ångström",
        "status": "complete",
        "total": "__total__",
        "max_total": "__max__",
        "percentage": "__pct__",
        "grade": "B",
        "gpa": "__gpa__",
        "passed": True,
        "rank": 3,
        "generation": 7,
        "subjects": [
            {
                "code": "MATH",
                "status": "present",
                "mark": "__m1__",
                "percentage": "__m1__",
                "grade": "B",
                "points": "__gpa__",
                "passed": True,
            },
            {
                "code": "PHYS",
                "status": "absent",
                "mark": "__zero__",
                "percentage": "__zero__",
                "grade": "F",
                "points": "__zero__",
                "passed": False,
            },
            {
                "code": "CHEM",
                "status": "exempt",
                "mark": None,
                "percentage": None,
                "grade": None,
                "points": None,
                "passed": None,
            },
        ],
    }
    fields.update(overrides)
    text = json.dumps(fields)
    # JSON numbers with their NUMERIC text, which json.dumps cannot produce from floats.
    for token, number in {
        '"__total__"': "212.50",
        '"__max__"': "300.00",
        '"__pct__"': "70.83",
        '"__gpa__"': "3.30",
        '"__m1__"': "79.50",
        '"__zero__"': "0.00",
    }.items():
        text = text.replace(token, number)
    return text.encode()


def csv_records(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def xlsx_bytes(rows: list[list[Cell]], header: list[str] | None = None) -> bytes:
    sink = io.BytesIO()
    with XlsxWriter(sink, "Results") as writer:
        if header is not None:
            writer.write_header(header)
        writer.write_rows(rows)
    return sink.getvalue()


def loaded_cells(data: bytes, *, read_only: bool) -> list[list[tuple[Any, str]]]:
    """(value, data_type) of every cell, via openpyxl; warnings are failures."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        workbook = load_workbook(io.BytesIO(data), read_only=read_only)
        sheet = workbook.worksheets[0]
        rows = [[(cell.value, cell.data_type) for cell in row] for row in sheet.iter_rows()]
        workbook.close()
    return rows


class UnseekableSink:
    """A pipe-like sink: write and flush only; seek and tell fail like a socket's."""

    def __init__(self) -> None:
        self.received = io.BytesIO()

    def write(self, data: bytes) -> int:
        return self.received.write(data)

    def flush(self) -> None:
        pass

    def seekable(self) -> bool:
        return False

    def seek(self, *_: object) -> int:
        raise io.UnsupportedOperation("seek")

    def tell(self) -> int:
        raise io.UnsupportedOperation("tell")


class CountingSink:
    """Keeps only the number of bytes, so memory measurements see the writer alone."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def tell(self) -> int:
        raise io.UnsupportedOperation("tell")


# -- results lines to rows ------------------------------------------------------------------


def test_export_columns_are_fixed_then_subject_codes_in_exam_order() -> None:
    assert export_columns(CODES) == (*FIXED_COLUMNS, "MATH", "PHYS", "CHEM", "BIO")
    assert FIXED_COLUMNS[0] == "student_number" and FIXED_COLUMNS[-1] == "rank"


def test_row_has_marks_ab_ex_and_empty_for_a_subject_without_entry() -> None:
    [row] = list(export_rows([result_line()], CODES))
    assert row == [
        "S001",
        "Zoë Ångström",
        "complete",
        Decimal("212.50"),
        Decimal("300.00"),
        Decimal("70.83"),
        "B",
        Decimal("3.30"),
        True,
        3,
        Decimal("79.50"),
        "AB",
        "EX",
        None,
    ]
    # Decimal all the way: a float would already have lost the decimal.
    assert all(not isinstance(cell, float) for cell in row)


def test_numbers_sent_as_decimal_strings_are_read_exactly() -> None:
    line = result_line(total="212.505", gpa="3.3", rank=None, passed=None, student_name=None)
    row = export_row(parse_result_line(line), CODES)
    assert row[3] == Decimal("212.505") and str(row[3]) == "212.505"
    assert row[7] == Decimal("3.3")
    assert row[1] is None and row[8] is None and row[9] is None


def test_incomplete_result_keeps_nulls_empty() -> None:
    nulls = dict.fromkeys(["total", "max_total", "percentage", "grade", "gpa", "passed", "rank"])
    line = result_line(status="incomplete", **nulls)
    row = export_row(parse_result_line(line), CODES)
    assert row[2:10] == ["incomplete", None, None, None, None, None, None, None]
    assert csv_records(CsvWriter().rows([row]))[0][2:10] == ["incomplete", *[""] * 7]


def test_blank_lines_are_skipped_and_every_row_comes_in_order() -> None:
    lines = [result_line(student_number="S1"), b"\n", result_line(student_number="S2") + b"\n"]
    assert [row[0] for row in export_rows(lines, CODES)] == ["S1", "S2"]


def test_batches_give_the_rows_of_single_lines_and_json_numbers_keep_their_decimals() -> None:
    """rows_function (the export job's path, floats cached) equals export_row line by line."""
    numbers = ["79.50", "79.505", "0.00", "0.01", "1", "100", "99999999.99", "1e2", "-0.0", "5.5"]
    lines = []
    for n, text in enumerate(numbers):  # the total as a JSON number written as ``text``
        lines.append(result_line(student_number=f"S{n}", rank=n).replace(b"212.50", text.encode()))
    lines.append(result_line(student_number="S-null", total=None, subjects=None))
    to_rows = rows_function(CODES)
    batched = to_rows(lines) + to_rows(lines)  # the second time from the cache
    single = [export_row(parse_result_line(line), CODES) for line in lines] * 2
    assert batched == single
    assert [row[3] for row in batched[: len(numbers)]] == [Decimal(t) for t in numbers]
    written = csv_records(CsvWriter().rows(batched))
    assert [record[3] for record in written[: len(numbers)]] == [
        "79.50",
        "79.51",
        "0.00",
        "0.01",
        "1.00",
        "100.00",
        "99999999.99",
        "100.00",
        "0.00",
        "5.50",
    ]


@pytest.mark.parametrize(
    "line",
    [
        b"not json",
        b"[1, 2]",
        result_line(total="NaN"),
        result_line(total="Infinity"),
        result_line(total="12abc"),
        result_line(total=True),
        result_line(rank="3"),
        result_line(passed="yes"),
        result_line(subjects={"MATH": 1}),
        result_line(subjects=[{"status": "present", "mark": 1}]),
        result_line(subjects=["MATH"]),
    ],
)
def test_a_broken_results_line_is_an_error_not_a_dropped_student(line: bytes) -> None:
    with pytest.raises(BadResultLine):
        list(export_rows([line], CODES))


# -- CSV ----------------------------------------------------------------------------------


def test_csv_starts_with_one_bom_and_ends_lines_with_crlf() -> None:
    writer = CsvWriter()
    data = writer.header(["a", "b"]) + writer.rows([["1", "2"]]) + writer.rows([["3", "4"]])
    assert data == b"\xef\xbb\xbfa,b\r\n1,2\r\n3,4\r\n"


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_csv_prefixes_every_formula_trigger_with_a_quote(trigger: str) -> None:
    data = CsvWriter().rows([[f"{trigger}1+1", f"x{trigger}"]])
    [[first, second]] = csv_records(data)
    assert first == f"'{trigger}1+1"
    assert second == f"x{trigger}"  # only a leading trigger is a formula


def test_csv_formula_prefix_applies_to_header_names_and_numbers_too() -> None:
    writer = CsvWriter()
    data = writer.header(["=HYPERLINK()", "MATH"]) + writer.rows([[Decimal("-1"), -2]])
    assert csv_records(data) == [["'=HYPERLINK()", "MATH"], ["'-1.00", "'-2"]]


def test_csv_quotes_separators_quotes_and_line_breaks_per_rfc_4180() -> None:
    cells: list[Cell] = ['O"Brien', "Smith, Jo", "two\nlines", "cr\rhere", "plain", ""]
    data = CsvWriter().rows([cells])
    assert data[3:] == b'"O""Brien","Smith, Jo","two\nlines","cr\rhere",plain,\r\n'
    assert csv_records(data) == [cells]


@pytest.mark.parametrize(
    ("number", "text"),
    [
        ("79.5", "79.50"),
        ("79.505", "79.51"),
        ("79.504999", "79.50"),
        ("0.005", "0.01"),
        ("2.675", "2.68"),  # a float would print 2.67: 2.675 is 2.67499999... in binary
        ("100", "100.00"),
        ("1E+3", "1000.00"),
        ("-0.001", "0.00"),
        ("12345678901234.565", "12345678901234.57"),
    ],
)
def test_csv_numbers_have_two_decimals_rounded_half_up(number: str, text: str) -> None:
    assert two_decimals(Decimal(number)) == text
    assert csv_records(CsvWriter().rows([[Decimal(number)]])) == [[text]]


def test_csv_cells_of_each_type() -> None:
    data = CsvWriter().rows([[True, False, None, 17, Decimal("3.3"), "AB", "EX"]])
    assert csv_records(data) == [["true", "false", "", "17", "3.30", "AB", "EX"]]


@pytest.mark.parametrize("cell", [1.5, float("nan"), object(), Decimal("NaN")])
def test_csv_refuses_floats_and_unknown_values(cell: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        CsvWriter().rows([[cell]])  # type: ignore[list-item]
    with pytest.raises((TypeError, ValueError)):
        cell_text(cell)  # type: ignore[arg-type]


def test_csv_round_trip_through_the_csv_module_with_unicode_names() -> None:
    names = ["Zoë Ångström", "Łukasz Żółć", "王小明", "محمد", "Ñandú 🎓", 'O\'Neil, "Pat"']
    lines = [result_line(student_number=f"S{i}", student_name=n) for i, n in enumerate(names)]
    writer = CsvWriter()
    data = writer.header(export_columns(CODES)) + writer.rows(export_rows(lines, CODES))
    records = csv_records(data)
    assert records[0] == list(export_columns(CODES))
    assert [record[1] for record in records[1:]] == names
    assert records[1] == [
        "S0",
        "Zoë Ångström",
        "complete",
        "212.50",
        "300.00",
        "70.83",
        "B",
        "3.30",
        "true",
        "3",
        "79.50",
        "AB",
        "EX",
        "",
    ]


def test_csv_decimal_cache_gives_the_same_text_as_uncached() -> None:
    values = [Decimal(f"{i}.{j:03d}") for i in range(50) for j in range(0, 1000, 7)]
    writer = CsvWriter()
    first, second = csv_records(writer.rows([values]) + writer.rows([values]))
    assert first == second == [two_decimals(value) for value in values]


def test_csv_speed(capsys: pytest.CaptureFixture[str]) -> None:
    row = sample_row()
    rows = [list(row) for _ in range(100_000)]
    writer = CsvWriter()
    started = time.perf_counter()
    size = sum(len(writer.rows(rows[i : i + 5000])) for i in range(0, len(rows), 5000))
    rate = len(rows) / (time.perf_counter() - started)
    with capsys.disabled():
        print(f"\nCSV: {rate:,.0f} rows/s of 18 columns ({size / MiB:.1f} MiB)")
    assert rate > 50_000  # generous for slow CI; about 240,000 rows/s on the dev machine


# -- XLSX ---------------------------------------------------------------------------------


def sample_row() -> list[Cell]:
    return [
        "S0001234",
        "Zoë O'Brien, Jr.",
        "complete",
        Decimal("612.50"),
        Decimal("800.00"),
        Decimal("76.56"),
        "B+",
        Decimal("3.30"),
        True,
        17,
        Decimal("71.25"),
        Decimal("80.00"),
        "AB",
        Decimal("66.50"),
        "EX",
        None,
        Decimal("90.00"),
        Decimal("55.75"),
    ]


@pytest.mark.parametrize("read_only", [False, True])
def test_xlsx_loads_in_openpyxl_with_the_right_types_and_values(read_only: bool) -> None:
    row: list[Cell] = ["S1", "Zoë", Decimal("79.505"), Decimal("300.00"), 3, True, False, None]
    data = xlsx_bytes([row, ["=1+1"]], header=["student_number", "name", "a", "b", "c", "d", "e"])
    # Normal mode pads short rows with empty cells up to the widest row; drop those.
    cells = [[c for c in r if c[0] is not None] for r in loaded_cells(data, read_only=read_only)]
    assert cells[0][0] == ("student_number", "s")
    assert cells[1] == [
        ("S1", "s"),
        ("Zoë", "s"),
        (79.51, "n"),  # two decimals half up, like the CSV
        (300, "n"),
        (3, "n"),
        (True, "b"),
        (False, "b"),
    ]
    assert cells[2] == [("=1+1", "s")]


def test_xlsx_cells_keep_their_columns_around_empty_cells() -> None:
    data = xlsx_bytes([[None, "B", None, Decimal("4")]])
    workbook = load_workbook(io.BytesIO(data))
    sheet = workbook.worksheets[0]
    assert sheet["A1"].value is None and sheet["B1"].value == "B"
    assert sheet["C1"].value is None and sheet["D1"].value == 4


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_xlsx_text_starting_with_a_formula_trigger_stays_text(trigger: str) -> None:
    text = f"{trigger}SUM(A1:A2)" if trigger != "\r" else "\rcmd|' /C calc'!A0"
    data = xlsx_bytes([[text, "=1+1"]])
    for read_only in (False, True):
        [[first, second]] = loaded_cells(data, read_only=read_only)
        assert first == (text, "s")
        assert second == ("=1+1", "s")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert b"<f>" not in archive.read("xl/worksheets/sheet1.xml")


def test_xlsx_strips_xml_illegal_control_characters() -> None:
    dirty = "A\x00B\x01C\x08D\x0bE\x0cF\x0eG\x1fH\ufffeI\uffffJ\ud800K"
    data = xlsx_bytes([[dirty, "tab\tnew\nline"]])
    [[first, second]] = loaded_cells(data, read_only=True)
    assert first == ("ABCDEFGHIJK", "s")
    assert second == ("tab\tnew\nline", "s")


def test_xlsx_escapes_markup_and_keeps_carriage_returns_and_spaces() -> None:
    text = '  <b>Tom & "Jerry"</b>\r\n '
    [[cell]] = loaded_cells(xlsx_bytes([[text]]), read_only=False)
    assert cell == (text, "s")


def test_xlsx_escapes_text_that_excel_would_read_as_a_character_escape() -> None:
    data = xlsx_bytes([["name_x0041_"]])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml")
    # Excel turns _x0041_ into "A"; _x005F_ is its escape for "_".
    assert b"name_x005F_x0041_" in sheet


def test_xlsx_workbook_has_the_minimal_parts_and_a_bold_header() -> None:
    data = xlsx_bytes([["x"]], header=["student_number"])
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == [
            "[Content_Types].xml",
            "_rels/.rels",
            "xl/workbook.xml",
            "xl/_rels/workbook.xml.rels",
            "xl/styles.xml",
            "xl/worksheets/sheet1.xml",
        ]
    workbook = load_workbook(io.BytesIO(data))
    sheet = workbook.worksheets[0]
    assert sheet.title == "Results"
    assert sheet["A1"].font.b is True and sheet["A2"].font.b is False


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("MATH/2026: [final]?", "MATH_2026_ _final__"),
        ("'quoted'", "quoted"),
        ("", "Sheet1"),
        ("x" * 40, "x" * 31),
        ('Tom & "Jerry" <3>', 'Tom & "Jerry" <3>'),
    ],
)
def test_xlsx_sheet_names_are_made_acceptable_to_excel(name: str, title: str) -> None:
    assert sheet_title(name) == title
    sink = io.BytesIO()
    with XlsxWriter(sink, name) as writer:
        writer.write_row(["x"])
    assert load_workbook(io.BytesIO(sink.getvalue())).sheetnames == [title]


def test_column_letters() -> None:
    assert [column_letter(i) for i in (0, 25, 26, 51, 52, 701, 702, 16383)] == [
        "A",
        "Z",
        "AA",
        "AZ",
        "BA",
        "ZZ",
        "AAA",
        "XFD",
    ]


def test_xlsx_to_an_unseekable_sink_uses_data_descriptors_and_loads() -> None:
    sink = UnseekableSink()
    assert not sink.seekable()
    with pytest.raises(io.UnsupportedOperation):
        sink.tell()
    sink.flush()
    with XlsxWriter(sink, "Results") as writer:
        writer.write_header(list(export_columns(CODES)))
        writer.write_rows(export_rows([result_line(), result_line(student_number="S2")], CODES))
    data = sink.received.getvalue()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert all(info.flag_bits & 0x08 for info in archive.infolist())  # data descriptor
        assert archive.testzip() is None
    cells = loaded_cells(data, read_only=True)
    assert [value for value, _ in cells[1]][:4] == ["S001", "Zoë Ångström", "complete", 212.5]
    assert cells[2][0] == ("S2", "s")


def test_xlsx_refuses_floats_and_writes_after_close() -> None:
    writer = XlsxWriter(io.BytesIO(), "x")
    with pytest.raises(TypeError):
        writer.write_row([1.5])  # type: ignore[list-item]
    writer.close()
    writer.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        writer.write_row(["x"])


def test_xlsx_round_trip_of_an_export() -> None:
    names = ["Zoë Ångström", "王小明", "=cmd|' /C calc'!A0", 'O\'Neil, "Pat"']
    lines = [result_line(student_number=f"S{i}", student_name=n) for i, n in enumerate(names)]
    sink = io.BytesIO()
    with XlsxWriter(sink, "Results") as writer:
        writer.write_header(list(export_columns(CODES)))
        writer.write_rows(export_rows(lines, CODES))
    for read_only in (False, True):
        cells = loaded_cells(sink.getvalue(), read_only=read_only)
        assert [value for value, _ in cells[0]] == list(export_columns(CODES))
        assert [row[1] for row in cells[1:]] == [(name, "s") for name in names]
        assert [value for value, _ in cells[1]][:14] == [
            "S0",
            "Zoë Ångström",
            "complete",
            212.5,
            300,
            70.83,
            "B",
            3.3,
            True,
            3,
            79.5,
            "AB",
            "EX",
            None,
        ][: len(cells[1])]


def many_rows(count: int) -> Iterator[list[Cell]]:
    for index in range(count):
        row = sample_row()
        row[0] = f"S{index:07d}"
        yield row


def test_xlsx_of_100_000_rows_is_written_with_bounded_memory(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sink = CountingSink()
    tracemalloc.start()
    try:
        with XlsxWriter(sink, "Results") as writer:
            writer.write_header([f"c{i}" for i in range(18)])
            writer.write_rows(many_rows(100_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with capsys.disabled():
        print(f"\nXLSX 100,000 rows: {sink.size / MiB:.1f} MiB written, peak {peak / MiB:.1f} MiB")
    assert peak < 10 * MiB


def test_xlsx_speed(capsys: pytest.CaptureFixture[str]) -> None:
    rows = list(many_rows(50_000))
    started = time.perf_counter()
    with XlsxWriter(CountingSink(), "Results") as writer:
        for i in range(0, len(rows), 5000):
            writer.write_rows(rows[i : i + 5000])
    rate = len(rows) / (time.perf_counter() - started)
    with capsys.disabled():
        print(f"\nXLSX: {rate:,.0f} rows/s of 18 columns")
    assert rate > 15_000  # generous for slow CI; about 140,000 rows/s on the dev machine


# -- templates ----------------------------------------------------------------------------


def test_csv_template_is_the_header_row_only() -> None:
    assert template_csv(["student_number", "MATH", "PHYS"]) == (
        b"\xef\xbb\xbfstudent_number,MATH,PHYS\r\n"
    )
    assert template_csv(["student_number", "-X"]) == b"\xef\xbb\xbfstudent_number,'-X\r\n"


def test_xlsx_template_is_the_header_row_only() -> None:
    data = template_xlsx(["student_number", "subject_code", "mark"])
    for read_only in (False, True):
        cells = loaded_cells(data, read_only=read_only)
        assert cells == [[("student_number", "s"), ("subject_code", "s"), ("mark", "s")]]
    assert load_workbook(io.BytesIO(data)).sheetnames == ["Marks"]
