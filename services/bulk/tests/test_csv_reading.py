"""The streaming CSV reader: encodings, separators, framing, limits, hostile files.

Every small input is read whole, one byte at a time and in random splits
(fixed seed): the rows, or the refusal, must be the same.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import random

import pytest
from bulk_service.domain.csv_reading import CsvReader
from bulk_service.domain.sheets import FileProblem, FileRejected, ReadLimits, SheetRow

Rows = list[tuple[int, tuple[str, ...]]]


def _read(chunks: list[bytes], limits: ReadLimits | None = None) -> tuple[Rows, str | None]:
    reader = CsvReader() if limits is None else CsvReader(limits)
    rows: list[SheetRow] = []
    for chunk in chunks:
        rows += reader.feed(chunk)
    rows += reader.finish()
    assert reader.bytes_read == sum(len(chunk) for chunk in chunks)
    return [(row.number, row.cells) for row in rows], reader.separator


def _splits(data: bytes) -> list[list[bytes]]:
    """The same bytes whole, byte by byte, and in random splits (fixed seed)."""
    ways = [[data], [data[i : i + 1] for i in range(len(data))]]
    rng = random.Random(20261205)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 6))))
        bounds = [0, *cuts, len(data)]
        ways.append([data[a:b] for a, b in itertools.pairwise(bounds)])
    if len(data) < 2:
        ways = [[data], [b"", data, b""]]
    return ways


def read_all_ways(data: bytes, limits: ReadLimits | None = None) -> tuple[Rows, str | None]:
    """Read ``data`` every way; all must give the same answer, which is returned."""
    results = {repr(_read(chunks, limits)) for chunks in _splits(data)}
    assert len(results) == 1, results
    return _read([data], limits)


def refusal_all_ways(data: bytes, limits: ReadLimits | None = None) -> FileRejected:
    """Read ``data`` every way; all must refuse it alike, the refusal is returned."""
    seen = set()
    for chunks in _splits(data):
        with pytest.raises(FileRejected) as caught:
            _read(chunks, limits)
        seen.add((caught.value.code, caught.value.row, caught.value.message))
    assert len(seen) == 1, seen
    with pytest.raises(FileRejected) as caught:
        _read([data], limits)
    return caught.value


# -- separators ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "separator", "rows"),
    [
        (b"a,b,c\n1,2,3\n", ",", [(1, ("a", "b", "c")), (2, ("1", "2", "3"))]),
        (b"a;b;c\n1;2,5;3\n", ";", [(1, ("a", "b", "c")), (2, ("1", "2,5", "3"))]),
        (b"a\tb\tc\n1\t2;5\t3\n", "\t", [(1, ("a", "b", "c")), (2, ("1", "2;5", "3"))]),
        (b"only\nx\n", ",", [(1, ("only",)), (2, ("x",))]),
        # Separators inside quotes in the header do not count.
        (b'"a,b,c";d\n1;2\n', ";", [(1, ("a,b,c", "d")), (2, ("1", "2"))]),
        # The most cells wins; a tie goes to comma.
        (b"a,b;c;d\n", ";", [(1, ("a,b", "c", "d"))]),
        (b"a,b;c\n", ",", [(1, ("a", "b;c"))]),
    ],
)
def test_separator_is_detected_from_the_header(data: bytes, separator: str, rows: Rows) -> None:
    assert read_all_ways(data) == (rows, separator)


def test_blank_lines_before_the_header_are_counted() -> None:
    rows, separator = read_all_ways(b"\r\n  \n\na;b\n1;2")
    assert separator == ";"
    assert rows == [(4, ("a", "b")), (5, ("1", "2"))]


# -- encodings ----------------------------------------------------------------

TABLE = "nom;note\nÉlodie;12,5\n李;AB\n😀;x\n"
EXPECTED = [(1, ("nom", "note")), (2, ("Élodie", "12,5")), (3, ("李", "AB")), (4, ("😀", "x"))]


@pytest.mark.parametrize(
    "data",
    [
        TABLE.encode("utf-8"),
        codecs.BOM_UTF8 + TABLE.encode("utf-8"),
        codecs.BOM_UTF16_LE + TABLE.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + TABLE.encode("utf-16-be"),
    ],
    ids=["utf8", "utf8-bom", "utf16le-bom", "utf16be-bom"],
)
def test_encodings_with_characters_split_across_chunks(data: bytes) -> None:
    assert read_all_ways(data) == (EXPECTED, ";")


def test_excel_unicode_text_is_tab_separated_utf16() -> None:
    data = codecs.BOM_UTF16_LE + "student_number\tmark\r\nS1\t12,5\r\n".encode("utf-16-le")
    assert read_all_ways(data) == ([(1, ("student_number", "mark")), (2, ("S1", "12,5"))], "\t")


def test_latin1_bytes_are_refused_naming_the_row() -> None:
    data = 'a,b\n1,2\n\n3,"x\ny"\nÉlodie,4\n'.encode("latin-1")
    refusal = refusal_all_ways(data)
    assert refusal.code is FileProblem.ENCODING
    assert refusal.row == 5  # the quoted newline keeps row 4 one record
    assert "Row 5" in refusal.message


def test_invalid_utf8_in_the_header_is_row_1() -> None:
    refusal = refusal_all_ways(b"nom\xe9,note\n1,2\n")
    assert (refusal.code, refusal.row) == (FileProblem.ENCODING, 1)


def test_bad_byte_right_after_a_line_end_is_on_the_next_row() -> None:
    for end in (b"\n", b"\r\n", b"\r"):
        refusal = refusal_all_ways(b"a,b" + end + b"\xff,2" + end)
        assert (refusal.code, refusal.row) == (FileProblem.ENCODING, 2), end


def test_truncated_utf8_at_the_end_is_refused() -> None:
    refusal = refusal_all_ways(b"a,b\n1,\xc3")
    assert (refusal.code, refusal.row) == (FileProblem.ENCODING, 2)


def test_odd_utf16_length_is_refused() -> None:
    data = codecs.BOM_UTF16_LE + "a\tb\n1\t2\n".encode("utf-16-le") + b"x"
    refusal = refusal_all_ways(data)
    assert (refusal.code, refusal.row) == (FileProblem.ENCODING, 3)


def test_nul_bytes_are_not_text() -> None:
    refusal = refusal_all_ways(b"a,b\n1,2\n3,\x004\n")
    assert (refusal.code, refusal.row) == (FileProblem.NOT_TEXT, 3)
    assert "Row 3" in refusal.message


def test_utf16_without_bom_is_not_text() -> None:
    refusal = refusal_all_ways("a,b\n1,2\n".encode("utf-16-le"))
    assert (refusal.code, refusal.row) == (FileProblem.NOT_TEXT, 1)


def test_a_png_is_refused() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06"
    refusal = refusal_all_ways(png)
    assert (refusal.code, refusal.row) == (FileProblem.ENCODING, 1)


def test_random_bytes_are_refused() -> None:
    data = random.Random(7).randbytes(200_000)
    with pytest.raises(FileRejected) as caught:
        _read([data[i : i + 65536] for i in range(0, len(data), 65536)])
    assert caught.value.code in (FileProblem.ENCODING, FileProblem.NOT_TEXT)


# -- framing ------------------------------------------------------------------


def test_quoted_cells_with_separators_quotes_and_newlines() -> None:
    data = (
        b'name,comment,mark\r\n"Doe, J.","said ""hi""\r\nthen left",12\r\n'
        b'"x",,"3"\r\nlast,"a\nb\rc",1\r\n'
    )
    assert read_all_ways(data) == (
        [
            (1, ("name", "comment", "mark")),
            (2, ("Doe, J.", 'said "hi"\r\nthen left', "12")),
            (3, ("x", "", "3")),
            (4, ("last", "a\nb\rc", "1")),
        ],
        ",",
    )


def test_a_multiline_record_is_one_row_and_numbers_count_records() -> None:
    data = b'h1,h2\n"a\n\n\nb",1\n2,2\n'
    assert read_all_ways(data)[0] == [(1, ("h1", "h2")), (2, ("a\n\n\nb", "1")), (3, ("2", "2"))]


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_line_ends(end: bytes) -> None:
    data = end.join([b"a,b", b"1,2", b"", b"3,4", b"", b""])
    assert read_all_ways(data)[0] == [(1, ("a", "b")), (2, ("1", "2")), (4, ("3", "4"))]


def test_no_line_end_after_the_last_row() -> None:
    assert read_all_ways(b"a,b\n1,2")[0] == [(1, ("a", "b")), (2, ("1", "2"))]
    assert read_all_ways(b'a,b\n1,"2"')[0] == [(1, ("a", "b")), (2, ("1", "2"))]


def test_trailing_empty_cells_and_lines_are_dropped_blank_rows_keep_numbers() -> None:
    data = b"a;b;;;\n1;;;\n;;;\n  ; \n;2;\n\n\n \n"
    assert read_all_ways(data) == (
        [(1, ("a", "b")), (2, ("1",)), (5, ("", "2"))],
        ";",
    )


def test_cells_are_not_stripped() -> None:
    data = b' a , b \n 1 ," 2 "\n'
    assert read_all_ways(data)[0] == [(1, (" a ", " b ")), (2, (" 1 ", " 2 "))]


def test_quote_inside_an_unquoted_cell_and_after_a_closing_quote_is_text() -> None:
    data = b'a,b\n5" disk,"x"y\n'
    assert read_all_ways(data)[0] == [(1, ("a", "b")), (2, ('5" disk', "xy"))]


def test_header_only_is_one_row() -> None:
    assert read_all_ways(b"student_number,subject_code,mark\r\n") == (
        [(1, ("student_number", "subject_code", "mark"))],
        ",",
    )


def test_unclosed_quote_at_the_end_is_malformed() -> None:
    refusal = refusal_all_ways(b'a,b\n1,"2\n3,4\n')
    assert (refusal.code, refusal.row) == (FileProblem.MALFORMED, 2)


@pytest.mark.parametrize(
    "data",
    [b"", codecs.BOM_UTF8, b"\n\r\n  \t\n", codecs.BOM_UTF16_LE, b",,,\n,\n\r\n", b" "],
)
def test_empty_files(data: bytes) -> None:
    refusal = refusal_all_ways(data) if len(data) > 1 else None
    with pytest.raises(FileRejected) as caught:
        _read([data])
    assert caught.value.code is FileProblem.EMPTY
    if refusal is not None:
        assert refusal.code is FileProblem.EMPTY


# -- limits -------------------------------------------------------------------


def test_ten_thousand_columns_are_too_wide() -> None:
    header = ",".join(f"c{i}" for i in range(10_000)).encode()
    with pytest.raises(FileRejected) as caught:
        _read([header + b"\n1,2\n"])
    assert (caught.value.code, caught.value.row) == (FileProblem.TOO_WIDE, 1)


def test_too_wide_on_a_later_row_and_in_chunks() -> None:
    limits = ReadLimits(max_columns=3)
    refusal = refusal_all_ways(b'a,b,c\n1,2,3\n1,"2",3,4\n', limits)
    assert (refusal.code, refusal.row) == (FileProblem.TOO_WIDE, 3)


def test_trailing_empty_columns_do_not_count_towards_the_width() -> None:
    limits = ReadLimits(max_columns=2)
    assert read_all_ways(b"a,b,,,,\n1,2,,,\n", limits)[0] == [(1, ("a", "b")), (2, ("1", "2"))]


def test_a_one_megabyte_cell_is_too_long() -> None:
    data = b"a,b\n1," + b"x" * 1_000_000 + b"\n"
    with pytest.raises(FileRejected) as caught:
        _read([data[i : i + 65536] for i in range(0, len(data), 65536)])
    assert (caught.value.code, caught.value.row) == (FileProblem.CELL_TOO_LONG, 2)
    quoted = b'a,b\n1,"' + b"x" * 1_000_000 + b'"\n'
    with pytest.raises(FileRejected) as caught:
        _read([quoted[i : i + 65536] for i in range(0, len(quoted), 65536)])
    assert (caught.value.code, caught.value.row) == (FileProblem.CELL_TOO_LONG, 2)


def test_cell_limit_while_buffering_small_chunks() -> None:
    limits = ReadLimits(max_cell_chars=5, max_row_chars=20)
    assert read_all_ways(b'a,b\n12345,"12""45"\n', limits)[0] == [
        (1, ("a", "b")),
        (2, ("12345", '12"45')),
    ]
    refusal = refusal_all_ways(b"a,b\n1,123456\n", limits)
    assert (refusal.code, refusal.row) == (FileProblem.CELL_TOO_LONG, 2)
    refusal = refusal_all_ways(b'a,b\n1,"12\n3456"\n', limits)
    assert (refusal.code, refusal.row) == (FileProblem.CELL_TOO_LONG, 2)


def test_row_limit_catches_many_short_cells_and_an_unclosed_quote() -> None:
    limits = ReadLimits(max_cell_chars=5, max_row_chars=20)
    refusal = refusal_all_ways(b"a,b\n" + b"1234," * 6 + b"\n", limits)
    assert (refusal.code, refusal.row) == (FileProblem.CELL_TOO_LONG, 2)
    refusal = refusal_all_ways(b"a,b\n" + b'"1234",' * 6 + b"\n", limits)
    assert (refusal.code, refusal.row) == (FileProblem.CELL_TOO_LONG, 2)
    # The header itself is bounded while the separator is still unknown.
    refusal = refusal_all_ways(b'"a' + b"\n" * 30, limits)
    assert (refusal.code, refusal.row) == (FileProblem.CELL_TOO_LONG, 1)


def test_an_unclosed_quote_swallowing_a_big_file_stops_early() -> None:
    """The reader refuses once past the limit, without reading (or holding) the rest."""
    reader = CsvReader()
    reader.feed(b'a,b\n1,"unclosed\n')
    line = b"S0000001,MATH,12\n" * 4000  # 68 kB a chunk
    with pytest.raises(FileRejected) as caught:
        for _ in range(1_000):
            reader.feed(line)
    assert caught.value.code is FileProblem.CELL_TOO_LONG
    assert reader.bytes_read < 200_000


# -- a big file ----------------------------------------------------------------


def test_200_000_rows_with_one_bad_row_are_all_returned() -> None:
    lines = [b"student_number,subject_code,mark"]
    lines += [b"S%07d,MATH%d,%d" % (i, i % 8, i % 100) for i in range(200_000)]
    lines[123_457] = b'S0123456,MATH1,"not, a mark"'
    data = b"\r\n".join(lines) + b"\r\n"
    reader = CsvReader()
    rows: list[SheetRow] = []
    for start in range(0, len(data), 65536):
        rows += reader.feed(data[start : start + 65536])
    rows += reader.finish()
    assert len(rows) == 200_001
    assert [row.number for row in rows] == list(range(1, 200_002))
    assert rows[123_457] == SheetRow(123_458, ("S0123456", "MATH1", "not, a mark"))
    assert rows[-1] == SheetRow(200_001, ("S0199999", "MATH7", "99"))
    assert reader.bytes_read == len(data)


def test_random_quoted_tables_match_pythons_csv_module() -> None:
    """Random tables written by ``csv`` read back the same, chunked randomly."""
    rng = random.Random(42)
    alphabet = ["a", "b", " ", ",", ";", '"', "\n", "\r\n", "é", "😀", "1"]
    for _ in range(30):
        table = [["h1", "h2", "h3"]]
        for _ in range(rng.randint(1, 8)):
            row = ["".join(rng.choices(alphabet, k=rng.randint(0, 6))) for _ in range(3)]
            row[0] = "k" + row[0]  # never a blank row
            table.append(row)
        out = io.StringIO()
        csv.writer(out, lineterminator="\r\n").writerows(table)
        data = out.getvalue().encode()
        expected = []
        for number, row in enumerate(table, start=1):
            while row and not row[-1].strip():
                row = row[:-1]
            expected.append((number, tuple(row)))
        for chunks in _splits(data)[:8]:
            assert _read(chunks) == (expected, ","), data


def test_random_lenient_text_reads_the_same_however_it_is_split() -> None:
    """Stray quotes, quoted newlines, every line end: whole lines take the fast
    paths, byte-by-byte reading the state machine; both must agree."""
    rng = random.Random(99)
    alphabet = ["a", " ", ",", ";", "\t", '"', '""', "\n", "\r", "\r\n", "é", "x"]
    for _ in range(150):
        data = ("h1,h2\n" + "".join(rng.choices(alphabet, k=rng.randint(0, 40)))).encode()
        outcomes = set()
        for chunks in _splits(data)[:6]:
            try:
                outcomes.add(repr(_read(chunks)))
            except FileRejected as refusal:
                outcomes.add(repr((refusal.code, refusal.row)))
        assert len(outcomes) == 1, (data, outcomes)
