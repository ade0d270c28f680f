"""XLSX reading: the first worksheet as numbered text rows, hostile workbooks refused."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import re
import struct
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable, Iterable

import pytest
from bulk_service.domain.sheets import FileProblem, FileRejected, ReadLimits, SheetRow
from bulk_service.domain.xlsx_reading import InflateLimits, cell_text, read_xlsx_rows
from openpyxl import Workbook

MiB = 1024 * 1024


def xlsx(rows: Iterable[Iterable[object]], *, more_sheets: int = 0) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(list(row))
    for index in range(more_sheets):
        workbook.create_sheet(f"Other {index}").append(["other sheet", index])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def read(data: bytes, **kwargs: object) -> list[SheetRow]:
    return list(read_xlsx_rows(io.BytesIO(data), **kwargs))  # type: ignore[arg-type]


def rejected(data: bytes, **kwargs: object) -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        read(data, **kwargs)
    return caught.value


def rewrite(data: bytes, change: Callable[[str, bytes], bytes]) -> bytes:
    """The same zip with each member's bytes passed through ``change``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, change(info.filename, source.read(info)), 8)
    return out.getvalue()


def with_sheet_data(sheet_data: str) -> bytes:
    """An openpyxl workbook whose first sheet's <sheetData> is the given XML."""

    def change(name: str, content: bytes) -> bytes:
        if name != "xl/worksheets/sheet1.xml":
            return content
        text = re.sub(r"<sheetData\s*/>|<sheetData>.*</sheetData>", sheet_data, content.decode())
        return text.encode()

    return rewrite(xlsx([]), change)


# -- shapes and cells ---------------------------------------------------------------


def test_long_marks_file() -> None:
    header = ["student_number", "subject_code", "mark"]
    rows = read(xlsx([header, ["S001", "MATH", 75], ["S002", "MATH", 72.5]]))
    assert rows == [
        SheetRow(1, ("student_number", "subject_code", "mark")),
        SheetRow(2, ("S001", "MATH", "75")),
        SheetRow(3, ("S002", "MATH", "72.5")),
    ]


def test_wide_marks_file_with_empty_cells_and_absences() -> None:
    rows = read(
        xlsx(
            [
                ["student_number", "MATH", "PHYS", "CHEM"],
                ["S001", 75.0, None, "AB"],
                ["S002", None, "ex", 61],
            ]
        )
    )
    assert [row.cells for row in rows] == [
        ("student_number", "MATH", "PHYS", "CHEM"),
        ("S001", "75", "", "AB"),
        ("S002", "", "ex", "61"),
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (75, "75"),
        (75.0, "75"),
        (72.5, "72.5"),
        (0.1 + 0.2, "0.3"),
        (1 / 3, "0.333333333333333"),
        (-0.0, "0"),
        (1e20, "100000000000000000000"),
        (7.5e-7, "0.00000075"),
        (123456789012, "123456789012"),
        (True, "TRUE"),
        (False, "FALSE"),
        ("  text as typed ", "  text as typed "),
        ("0042", "0042"),
        (dt.datetime(2024, 6, 1), "2024-06-01"),
        (dt.datetime(2024, 6, 1, 13, 45), "2024-06-01T13:45:00"),
        (dt.date(2024, 6, 1), "2024-06-01"),
        (dt.time(8, 30), "08:30:00"),
        (dt.timedelta(hours=26, minutes=5), "26:05:00"),
        (None, ""),
    ],
)
def test_cell_text(value: object, text: str) -> None:
    assert cell_text(value) == text


def test_cells_through_a_workbook() -> None:
    [row] = read(xlsx([[75.0, 0.1 + 0.2, True, dt.datetime(2024, 6, 1), dt.date(2024, 6, 2), "x"]]))
    assert row.cells == ("75", "0.3", "TRUE", "2024-06-01", "2024-06-02", "x")


def test_numbers_as_excel_stores_them() -> None:
    # Excel writes doubles with 17 significant digits; the cell shows 15.
    [row] = read(
        with_sheet_data(
            '<sheetData><row r="1"><c r="A1"><v>0.30000000000000004</v></c>'
            '<c r="B1"><v>72.5</v></c><c r="C1"><v>75</v></c>'
            '<c r="D1"><v>1.0000000000000001E-3</v></c>'
            '<c r="E1" t="b"><v>1</v></c><c r="F1" t="e"><v>#DIV/0!</v></c>'
            '<c r="G1" t="str"><v>formula text</v></c></row></sheetData>'
        )
    )
    assert row.cells == ("0.3", "72.5", "75", "0.001", "TRUE", "#DIV/0!", "formula text")


def test_formula_gives_its_cached_value_and_none_without_one() -> None:
    rows = read(
        with_sheet_data(
            '<sheetData><row r="1"><c r="A1"><v>40</v></c><c r="B1"><f>A1*2</f><v>80</v></c>'
            '<c r="C1" t="str"><f>"x"&amp;A1</f><v>x40</v></c></row>'
            '<row r="2"><c r="A2"><v>1</v></c><c r="B2"><f>A2*2</f></c><c r="C2"><v>3</v></c></row>'
            "</sheetData>"
        )
    )
    assert [row.cells for row in rows] == [("40", "80", "x40"), ("1", "", "3")]


def test_formula_written_by_openpyxl_has_no_cached_value() -> None:
    [row] = read(xlsx([[1, "=A1*2"]]))
    assert row.cells == ("1",)


def test_empty_rows_skipped_but_counted_and_trailing_cells_removed() -> None:
    rows = read(
        xlsx(
            [
                ["student_number", "mark", None, None],
                [],
                ["S001", 75, "", None],
                [None, None],
                ["S002", None, None, None],
            ]
        )
    )
    assert rows == [
        SheetRow(1, ("student_number", "mark")),
        SheetRow(3, ("S001", "75")),
        SheetRow(5, ("S002",)),
    ]


def test_rows_numbered_as_the_sheet_shows_them() -> None:
    # A sheet starting at row 3, with a wrong <dimension> tag and styled empty cells.
    data = rewrite(
        with_sheet_data(
            '<sheetData><row r="3"><c r="B3" t="inlineStr"><is><t>student_number</t></is></c>'
            '<c r="C3" t="inlineStr"><is><t>mark</t></is></c><c r="H3" s="0"/></row>'
            '<row r="7"><c r="B7" t="inlineStr"><is><t>S001</t></is></c><c r="C7"><v>9</v></c>'
            '<c r="D7" t="inlineStr"><is><t>extra</t></is></c></row></sheetData>'
        ),
        lambda name, content: re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1"', content),
    )
    assert read(data) == [
        SheetRow(3, ("", "student_number", "mark")),
        SheetRow(7, ("", "S001", "9", "extra")),
    ]


def test_only_the_first_worksheet_is_read() -> None:
    rows = read(xlsx([["student_number", "mark"], ["S001", 1]], more_sheets=2))
    assert [row.cells for row in rows] == [("student_number", "mark"), ("S001", "1")]


def test_an_empty_sheet_has_no_rows() -> None:
    assert read(xlsx([])) == []


# -- limits -------------------------------------------------------------------------


def test_ten_thousand_columns_refused() -> None:
    problem = rejected(xlsx([["student_number"], ["S001", *range(10_000)]]))
    assert problem.code is FileProblem.TOO_WIDE
    assert problem.row == 2
    assert "10001 columns" in problem.message


def test_columns_up_to_the_limit_accepted() -> None:
    [row] = read(xlsx([list(range(5))]), limits=ReadLimits(max_columns=5))
    assert len(row.cells) == 5


def test_long_cell_refused() -> None:
    problem = rejected(xlsx([["header"], ["x" * 10_001]]))
    assert problem.code is FileProblem.CELL_TOO_LONG
    assert problem.row == 2


def test_long_row_refused() -> None:
    problem = rejected(xlsx([["x" * 100] * 11]), limits=ReadLimits(max_row_chars=1_000))
    assert problem.code is FileProblem.CELL_TOO_LONG
    assert problem.row == 1


# -- not a workbook -----------------------------------------------------------------


def _zip_of(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"student_number,subject_code,mark\nS001,MATH,75\n", id="csv"),
        pytest.param(bytes(range(256)) * 40, id="random-bytes"),
        pytest.param(b"", id="empty"),
        pytest.param(xlsx([["a", 1]] * 50)[:-200], id="truncated-central-directory"),
        pytest.param(_zip_of({"hello.txt": b"hello"}), id="zip-without-workbook"),
        pytest.param(_zip_of({"[Content_Types].xml": b"<not xml"}), id="broken-content-types"),
        pytest.param(
            rewrite(
                xlsx([["a", 1]]),
                lambda name, content: content[:-40] if name.endswith("sheet1.xml") else content,
            ),
            id="broken-sheet-xml",
        ),
    ],
)
def test_not_a_workbook(data: bytes) -> None:
    problem = rejected(data)
    assert problem.code is FileProblem.NOT_A_WORKBOOK
    assert "Excel workbook" in problem.message


def test_xml_entity_expansion_refused() -> None:
    # A "billion laughs" in the sheet. expat (>= 2.4) stops it only past 8 MiB of
    # output (150 MB of ElementTree fragments): any DTD is refused before parsing.
    entities = '<!ENTITY a0 "ha">' + "".join(
        f'<!ENTITY a{n} "{f"&a{n - 1};" * 10}">' for n in range(1, 10)
    )
    data = rewrite(
        xlsx([["a"]]),
        lambda name, content: (
            f"<?xml version='1.0'?><!DOCTYPE worksheet [{entities}]>".encode()
            + content.split(b"?>", 1)[-1].replace(b"<t>a</t>", b"<t>&a9;</t>")
            if name == "xl/worksheets/sheet1.xml"
            else content
        ),
    )
    tracemalloc.start()
    problem = rejected(data)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert problem.code is FileProblem.NOT_A_WORKBOOK
    assert "DTD" in problem.message
    assert peak < 5 * MiB


def test_corrupted_sheet_data_refused_not_leaked() -> None:
    data = bytearray(xlsx([[f"S{n:05d}", n, n / 7] for n in range(3_000)]))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
    start = info.header_offset + 30 + len(info.filename) + 200  # inside the deflated stream
    data[start : start + 64] = bytes(64)
    problem = rejected(bytes(data))
    assert problem.code is FileProblem.NOT_A_WORKBOOK


# -- zip bombs ------------------------------------------------------------------------


def bomb(inflated_bytes: int, *, member: str = "xl/worksheets/sheet1.xml") -> bytes:
    """A workbook whose ``member`` is replaced by ``inflated_bytes`` of repeated XML,
    written in 1 MiB chunks so the test never holds it."""
    out = io.BytesIO()
    base = xlsx([["a"]])
    with zipfile.ZipFile(io.BytesIO(base)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if info.filename != member:
                target.writestr(info.filename, source.read(info), zipfile.ZIP_DEFLATED)
        info = zipfile.ZipInfo(member)
        info.compress_type = zipfile.ZIP_DEFLATED
        with target.open(info, "w", force_zip64=inflated_bytes >= 2**31) as stream:
            chunk = b'<row r="1"/>' * (MiB // 12)
            written = 0
            while written < inflated_bytes:
                stream.write(chunk)
                written += len(chunk)
    return out.getvalue()


def _peak_while(call: Callable[[], object]) -> int:
    tracemalloc.start()
    with contextlib.suppress(FileRejected):
        call()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def test_bomb_at_the_default_limits_refused_cheaply() -> None:
    data = bomb(1100 * MiB)
    assert len(data) < 5 * MiB
    problem = rejected(data)
    assert problem.code is FileProblem.WORKBOOK_TOO_LARGE
    started = time.perf_counter()
    peak = _peak_while(lambda: read(data))
    assert time.perf_counter() - started < 1
    assert peak < 2 * MiB


def test_total_size_refused_even_at_a_plausible_ratio() -> None:
    data = bomb(300 * MiB)
    problem = rejected(data, inflate=InflateLimits(max_total_bytes=256 * MiB, max_ratio=10_000))
    assert problem.code is FileProblem.WORKBOOK_TOO_LARGE
    assert "in all" in problem.message


def test_compression_ratio_refused() -> None:
    problem = rejected(bomb(64 * MiB))
    assert problem.code is FileProblem.WORKBOOK_TOO_LARGE
    assert "times" in problem.message


@pytest.mark.parametrize(
    ("member", "limit"),
    [("xl/sharedStrings.xml", "shared strings"), ("xl/styles.xml", "xl/styles.xml")],
)
def test_parts_read_whole_are_capped(member: str, limit: str) -> None:
    problem = rejected(bomb(40 * MiB, member=member), inflate=InflateLimits(max_ratio=10_000))
    assert problem.code is FileProblem.WORKBOOK_TOO_LARGE
    assert limit in problem.message


def test_too_many_members_refused_before_the_directory_is_read() -> None:
    data = _zip_of({f"x/{n}.bin": b"" for n in range(101)})
    problem = rejected(data, inflate=InflateLimits(max_members=100))
    assert problem.code is FileProblem.WORKBOOK_TOO_LARGE


def _lie_about(data: bytes, member: str, *, size: int, crc: int | None) -> bytes:
    """Patch ``member``'s central directory entry to declare ``size`` (and ``crc``)."""
    patched = bytearray(data)
    end = data.rindex(b"PK\x05\x06")
    directory = struct.unpack("<L", data[end + 16 : end + 20])[0]
    entry = data.index(b"PK\x01\x02", directory)
    while True:
        name_length = struct.unpack("<H", data[entry + 28 : entry + 30])[0]
        if data[entry + 46 : entry + 46 + name_length] == member.encode():
            break
        entry = data.index(b"PK\x01\x02", entry + 46)
    patched[entry + 24 : entry + 28] = struct.pack("<L", size)
    if crc is not None:
        patched[entry + 16 : entry + 20] = struct.pack("<L", crc)
    return bytes(patched)


def _styles_with_padding(padding: int) -> tuple[bytes, bytes]:
    """A workbook whose styles.xml (read whole by openpyxl) is followed by
    ``padding`` bytes of whitespace (still valid XML), and the real styles."""
    base = xlsx([["student_number", "mark"], ["S001", 75]])
    with zipfile.ZipFile(io.BytesIO(base)) as source:
        styles = source.read("xl/styles.xml")
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if info.filename != "xl/styles.xml":
                target.writestr(info.filename, source.read(info), zipfile.ZIP_DEFLATED)
        info = zipfile.ZipInfo("xl/styles.xml")
        info.compress_type = zipfile.ZIP_DEFLATED
        with target.open(info, "w") as stream:
            stream.write(styles)
            for _ in range(padding // MiB):
                stream.write(b" " * MiB)
    return out.getvalue(), styles


def test_lying_declared_size_bounds_what_is_inflated() -> None:
    # styles.xml declares its real size but inflates to 300 MiB more. zipfile stops at
    # the declared size (ZipExtFile._left): with a CRC matching the declared bytes the
    # workbook reads as if the padding were not there, without inflating it.
    data, styles = _styles_with_padding(300 * MiB)
    honest = rejected(data, inflate=InflateLimits(max_ratio=10_000))
    assert honest.code is FileProblem.WORKBOOK_TOO_LARGE
    lying = _lie_about(data, "xl/styles.xml", size=len(styles), crc=zlib.crc32(styles))
    started = time.perf_counter()
    tracemalloc.start()
    rows = read(lying)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert [row.cells for row in rows] == [("student_number", "mark"), ("S001", "75")]
    assert peak < 20 * MiB
    assert time.perf_counter() - started < 5


def test_lying_declared_size_with_its_crc_refused() -> None:
    data, styles = _styles_with_padding(300 * MiB)
    lying = _lie_about(data, "xl/styles.xml", size=len(styles), crc=None)
    tracemalloc.start()
    problem = rejected(lying)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert problem.code is FileProblem.NOT_A_WORKBOOK
    assert "CRC" in problem.message
    assert peak < 20 * MiB


def test_a_large_part_read_whole_is_refused_while_reading() -> None:
    # The workbook's relationships call the (large) sheet a chartsheet, which openpyxl
    # reads whole: names cannot tell which parts are streamed, the read itself is capped.
    data = rewrite(
        bomb(9 * MiB),
        lambda name, content: (
            content.replace(b"relationships/worksheet", b"relationships/chartsheet")
            if name == "xl/_rels/workbook.xml.rels"
            else content
        ),
    )
    tracemalloc.start()
    problem = rejected(data, inflate=InflateLimits(max_ratio=10_000))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert problem.code is FileProblem.WORKBOOK_TOO_LARGE
    assert "read whole" in problem.message
    assert peak < 30 * MiB


# -- streaming ------------------------------------------------------------------------


def test_large_sheet_read_in_small_memory() -> None:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append(["student_number", *(f"SUBJ{n}" for n in range(8))])
    for n in range(5_000):
        sheet.append([f"S{n:06d}", *(n % 101 + k / 2 for k in range(8))])
    out = io.BytesIO()
    workbook.save(out)
    tracemalloc.start()
    count = 0
    last = None
    for row in read_xlsx_rows(io.BytesIO(out.getvalue())):
        count += 1
        last = row
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 5_001
    assert last == SheetRow(
        5_001, ("S004999", "50", "50.5", "51", "51.5", "52", "52.5", "53", "53.5")
    )
    assert peak < 10 * MiB


def test_the_workbook_is_closed_when_reading_stops_early() -> None:
    source = io.BytesIO(xlsx([["a"], ["b"], ["c"]]))
    rows = read_xlsx_rows(source)
    assert next(rows).cells == ("a",)
    rows.close()  # the finally closes the workbook; the source stays usable
    assert not source.closed
    assert [row.cells for row in read_xlsx_rows(source)] == [("a",), ("b",), ("c",)]
