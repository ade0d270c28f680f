"""Rows of the first worksheet of an XLSX upload, read as a stream.

The workbook is opened with openpyxl's read-only mode (``read_only=True``:
the worksheet XML is parsed incrementally, a row at a time) and
``data_only=True`` (a formula cell gives the value Excel cached when it last
saved the file). Every cell becomes text as a person sees it in Excel:

* numbers without float artefacts: Excel stores IEEE doubles and shows at most
  15 significant digits, so a number is rounded to 15 significant digits and
  written without exponent or trailing zeros (``75.0`` -> ``"75"``,
  ``72.5`` -> ``"72.5"``, ``0.30000000000000004`` -> ``"0.3"``);
* text as it is, booleans as ``TRUE`` / ``FALSE`` (Excel's spelling), error
  cells as their code (``#DIV/0!``);
* dates and times (cells with a date number format) as ISO 8601 text, a date
  at midnight as the date alone (``2024-06-01``), durations as ``h:mm:ss``;
* a formula without a cached value (a file written by a library that cannot
  compute formulas, openpyxl among them, and never opened in Excel) is an
  empty cell: there is no value to read.

Rows are numbered as the spreadsheet shows them (the header is row 1 when the
sheet starts at row 1); empty rows are skipped but counted, trailing empty
cells removed. Rows written out of order in the XML (never by Excel) are read
as openpyxl does: a row whose number is lower than one already read is
dropped.

Before openpyxl sees the file, its zip central directory is checked against
:class:`InflateLimits` (a zip bomb is refused as ``WORKBOOK_TOO_LARGE`` without
inflating anything). Declared sizes can lie, so inflation is also guarded while
openpyxl reads: CPython's ``zipfile`` never returns more than a member's declared
``file_size`` (``ZipExtFile._left``) and then checks the CRC, but a whole read
(``ZipFile.read``, ``ZipExtFile.read()``) decompresses all of the member's
compressed bytes in one call (``_read1(MAX_N)``, up to 1 GiB) *before* cutting
at the declared size. openpyxl reads every part but the worksheets whole, so
the workbook is opened through :class:`_GuardedZipFile`, whose members read
whole are read in 64 KiB steps and refused past
:attr:`InflateLimits.max_other_part_bytes`; streamed reads (the worksheet and
shared strings, parsed incrementally: ElementTree's iterparse reads 16 KiB at
a time, lxml when installed reads small blocks too) inflate at most
what is asked per call. This uses openpyxl's ``ExcelReader`` (what
``load_workbook`` does, with the archive swapped), checked against 3.1.5.
"""

from __future__ import annotations

import datetime as dt
import math
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import IO, Any, BinaryIO, Literal, cast

from openpyxl.reader.excel import ExcelReader

from bulk_service.domain.sheets import FileProblem, FileRejected, ReadLimits, SheetRow

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class InflateLimits:
    """What the parts of a workbook may inflate to; past any, ``WORKBOOK_TOO_LARGE``.

    The worker must stay under 200 MB RSS whatever the file (issue 9). The
    worksheet XML is streamed, so its size costs time, not memory; the other
    parts openpyxl reads are held whole in memory.
    """

    max_total_bytes: int = 1024 * MiB
    """All members together. Bounds the parsing time: 1 GiB of sheet XML is
    about 10 million marks rows (~100 bytes of XML a row), far past any real
    marks or users file, and takes openpyxl a few minutes to stream."""
    max_shared_strings_bytes: int = 32 * MiB
    """``xl/sharedStrings.xml`` is loaded whole into a list of ``str``. Worst
    case, tiny distinct strings (``<si><t>abcd</t></si>``, 21 bytes each) are
    ~60 bytes each as Python objects: 32 MiB -> ~100 MB, which still fits the
    worker's budget; realistic strings (student numbers, names, emails) cost
    about 2-3x their XML size: a users file of ~200,000 rows fits."""
    max_other_part_bytes: int = 8 * MiB
    """Any other XML part openpyxl parses whole into a tree (workbook, styles,
    theme, relationships): Excel writes these in kilobytes."""
    max_ratio: int = 200
    """Compression ratio (inflated / compressed) of any member over
    :attr:`ratio_floor_bytes`. Real sheet XML deflates 10-30:1; a bomb of
    repeated bytes reaches ~1000:1."""
    ratio_floor_bytes: int = 1 * MiB
    max_members: int = 10_000
    """Entries in the zip, checked from the end-of-central-directory record
    before the central directory is read (each entry costs ~500 bytes of
    ``ZipInfo``); a workbook holds a handful per sheet."""


def read_xlsx_rows(
    source: BinaryIO,
    limits: ReadLimits = ReadLimits(),
    inflate: InflateLimits = InflateLimits(),
) -> Iterator[SheetRow]:
    """Yield the first worksheet's non-empty rows; :class:`FileRejected` if unreadable.

    ``source`` is a seekable binary file positioned anywhere; it is not closed.
    The workbook is closed when the iterator ends, fails or is closed.
    """
    check_archive(source, inflate)
    workbook = _open_workbook(source, inflate)
    try:
        sheets: list[Any] = list(workbook.worksheets)
        if not sheets:
            raise FileRejected(FileProblem.NOT_A_WORKBOOK, "The workbook has no worksheet.")
        sheet = sheets[0]
        sheet.reset_dimensions()  # trust the cells, not the <dimension> tag
        # min_row=1: number rows from the sheet's first row whatever <dimension>
        # claims; with reset dimensions a missing row comes back as ().
        rows: Iterator[tuple[object, ...]] = sheet.iter_rows(min_row=1, values_only=True)
        number = 0
        while True:
            try:
                values = next(rows, None)
            except (MemoryError, FileRejected):
                raise
            except Exception as exc:
                raise _not_a_workbook(exc, row=number + 1) from exc
            if values is None:
                return
            number += 1
            cells = _row_cells(values, number, limits)
            if cells:
                yield SheetRow(number=number, cells=cells)
    finally:
        workbook.close()


def _open_workbook(source: BinaryIO, inflate: InflateLimits) -> Any:
    """``load_workbook(source, read_only=True, data_only=True, keep_links=False)``
    reading through :class:`_GuardedZipFile`."""
    source.seek(0)
    try:
        reader: Any = ExcelReader(source, read_only=True, data_only=True, keep_links=False)
        reader.archive.close()  # only the central directory was read
    except MemoryError:
        raise
    except Exception as exc:
        raise _not_a_workbook(exc) from exc
    archive = _GuardedZipFile(source, inflate.max_other_part_bytes)
    reader.archive = archive
    try:
        try:
            reader.read()
        except (MemoryError, FileRejected):
            raise
        except Exception as exc:
            raise _not_a_workbook(exc) from exc
    except BaseException:
        archive.close()
        raise
    return reader.wb


class _GuardedZipFile(zipfile.ZipFile):
    """A zip whose members read whole inflate in small steps, up to ``whole_read_cap``."""

    def __init__(self, source: BinaryIO, whole_read_cap: int) -> None:
        super().__init__(source)
        self.whole_read_cap = whole_read_cap

    def open(
        self,
        name: str | zipfile.ZipInfo,
        mode: Literal["r", "w"] = "r",
        pwd: bytes | None = None,
        *,
        force_zip64: bool = False,
    ) -> IO[bytes]:
        stream = super().open(name, mode, pwd, force_zip64=force_zip64)
        if mode != "r":
            return stream
        label = name.filename if isinstance(name, zipfile.ZipInfo) else name
        return cast(IO[bytes], _GuardedMember(stream, label, self.whole_read_cap))


class _GuardedMember:
    """A member's stream: ``read(n)`` passes through (inflates at most ``n``);
    ``read()`` reads 64 KiB at a time and stops past the cap.

    It also refuses a document type declaration: OOXML parts never have one,
    and its entities are the "billion laughs" (expat >= 2.4 stops the
    amplification only past 8 MiB of output, which ElementTree keeps as
    hundreds of MB of string fragments)."""

    STEP = 64 * 1024
    DTD_MARKS = tuple("<!DOCTYPE".encode(codec) for codec in ("utf-8", "utf-16-le", "utf-16-be"))
    KEEP = max(len(mark) for mark in DTD_MARKS) - 1

    def __init__(self, stream: IO[bytes], name: str, cap: int) -> None:
        self._stream = stream
        self._name = name
        self._cap = cap
        self._tail = b""

    def read(self, n: int | None = -1) -> bytes:
        if n is not None and n >= 0:
            return self._checked(self._stream.read(n))
        chunks: list[bytes] = []
        size = 0
        while chunk := self._checked(self._stream.read(self.STEP)):
            size += len(chunk)
            if size > self._cap:
                raise _too_large(
                    f"Its part {self._name} inflates past {_mib(self._cap)} (read whole)"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _checked(self, data: bytes) -> bytes:
        window = self._tail + data[: self.KEEP]  # a mark across two reads
        for text in (window, data):
            if any(mark in text for mark in self.DTD_MARKS):
                raise FileRejected(
                    FileProblem.NOT_A_WORKBOOK,
                    f"The file is not a valid Excel workbook (.xlsx): its part {self._name} "
                    "declares a DTD (entities), which Excel never writes.",
                )
        self._tail = (self._tail + data)[-self.KEEP :]
        return data

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> _GuardedMember:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._stream, attribute)


def check_archive(source: BinaryIO, inflate: InflateLimits) -> None:
    """Refuse a file that is not a zip, or whose members would inflate too far."""
    source.seek(0)
    entries = _declared_entries(source)
    if entries > inflate.max_members:
        raise FileRejected(
            FileProblem.WORKBOOK_TOO_LARGE,
            f"The workbook has {entries} parts; at most {inflate.max_members} are accepted.",
        )
    source.seek(0)
    try:
        with zipfile.ZipFile(source) as archive:
            members = archive.infolist()
    except MemoryError:
        raise
    except Exception as exc:
        raise _not_a_workbook(exc) from exc
    total = 0
    for member in members:
        size = member.file_size
        total += size
        name = member.filename
        if name == "xl/sharedStrings.xml" and size > inflate.max_shared_strings_bytes:
            raise _too_large(f"Its shared strings inflate to {_mib(size)}")
        if (
            name.endswith((".xml", ".rels"))
            and not name.startswith("xl/worksheets/")
            and name != "xl/sharedStrings.xml"
            and size > inflate.max_other_part_bytes
        ):
            raise _too_large(f"Its part {name} inflates to {_mib(size)}")
        if size > inflate.ratio_floor_bytes and size > inflate.max_ratio * max(
            member.compress_size, 1
        ):
            raise _too_large(
                f"Its part {name} inflates {size // max(member.compress_size, 1)} times "
                f"(at most {inflate.max_ratio} accepted)"
            )
    if total > inflate.max_total_bytes:
        raise _too_large(f"It inflates to {_mib(total)} in all")


def _declared_entries(source: BinaryIO) -> int:
    """The entry count of the end-of-central-directory record, before reading the directory.

    Uses CPython's ``zipfile._EndRecData`` (stable across 3.x, handles zip64);
    ``None`` there means no end record: not a zip.
    """
    end_record_data: Any = getattr(zipfile, "_EndRecData")  # noqa: B009 - private helper
    try:
        record: Any = end_record_data(source)
    except MemoryError:
        raise
    except Exception as exc:
        raise _not_a_workbook(exc) from exc
    if not record:
        raise FileRejected(
            FileProblem.NOT_A_WORKBOOK,
            "The file is not an Excel workbook (.xlsx): it is not a zip archive.",
        )
    return int(record[4])  # _ECD_ENTRIES_TOTAL


def _row_cells(values: tuple[object, ...], number: int, limits: ReadLimits) -> tuple[str, ...]:
    end = len(values)
    while end and (values[end - 1] is None or values[end - 1] == ""):
        end -= 1
    if end > limits.max_columns:
        raise FileRejected(
            FileProblem.TOO_WIDE,
            f"Row {number} has {end} columns; at most {limits.max_columns} are accepted.",
            row=number,
        )
    cells = tuple(cell_text(value) for value in values[:end])
    total = 0
    for column, text in enumerate(cells, start=1):
        if len(text) > limits.max_cell_chars:
            raise FileRejected(
                FileProblem.CELL_TOO_LONG,
                f"Row {number}, column {column} has {len(text)} characters; "
                f"at most {limits.max_cell_chars} are accepted.",
                row=number,
            )
        total += len(text)
    if total > limits.max_row_chars:
        raise FileRejected(
            FileProblem.CELL_TOO_LONG,
            f"Row {number} has {total} characters; at most {limits.max_row_chars} are accepted.",
            row=number,
        )
    return cells


def cell_text(value: object) -> str:
    """One cell's value as openpyxl reads it, as the text Excel shows."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number_text(value)
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        seconds = round(value.total_seconds())
        sign = "-" if seconds < 0 else ""
        hours, rest = divmod(abs(seconds), 3600)
        return f"{sign}{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return str(value)


def _number_text(value: float) -> str:
    if not math.isfinite(value):
        return repr(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    # Excel shows 15 significant digits: 0.1 + 0.2 stored as 0.30000000000000004 is 0.3.
    text = format(Decimal(format(value, ".15g")), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _not_a_workbook(exc: BaseException, *, row: int | None = None) -> FileRejected:
    where = f" (reading row {row})" if row is not None else ""
    return FileRejected(
        FileProblem.NOT_A_WORKBOOK,
        "The file is not a valid Excel workbook (.xlsx)"
        f"{where}: {type(exc).__name__}: {str(exc)[:200]}",
        row=row,
    )


def _too_large(what: str) -> FileRejected:
    return FileRejected(
        FileProblem.WORKBOOK_TOO_LARGE,
        f"The workbook is refused as a possible zip bomb: {what}.",
    )


def _mib(size: int) -> str:
    return f"{size / MiB:.0f} MiB"
