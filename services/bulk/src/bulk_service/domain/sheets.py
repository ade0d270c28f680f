"""What every uploaded file becomes, CSV or XLSX: numbered rows of text cells.

The readers (``csv_reading``, ``xlsx_reading``) turn bytes into
:class:`SheetRow` values one at a time, so a file is never held whole; the
marks and users rules then read rows without knowing the file's format.
A file that cannot be read at all raises :class:`FileRejected`, which fails
the job as a whole with its code and message (API.md: "a file in no such
encoding fails as a whole with a message naming the row of the first bad
byte").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class SheetRow:
    """One row of a file as its reader saw it."""

    number: int
    """1-based, the header is row 1 (as in API.md's error rows); a CSV record
    spanning several lines (a quoted newline) is one row."""
    cells: tuple[str, ...]
    """Every cell as text, trailing empty cells removed."""


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """What one file may hold; past any of these the whole file is refused."""

    max_columns: int = 1_000
    max_cell_chars: int = 10_000
    max_row_chars: int = 1_000_000


class FileProblem(StrEnum):
    """Why a whole file was refused (the job's ``error.code``)."""

    ENCODING = "FILE_ENCODING"
    """Not UTF-8 (with or without BOM) nor UTF-16 with BOM; the message names the row."""
    NOT_TEXT = "FILE_NOT_TEXT"
    """NUL or other binary bytes in a CSV (a binary file named .csv)."""
    EMPTY = "FILE_EMPTY"
    """No header row at all."""
    TOO_WIDE = "FILE_TOO_WIDE"
    """More columns than :attr:`ReadLimits.max_columns`."""
    CELL_TOO_LONG = "FILE_CELL_TOO_LONG"
    """A cell or a row longer than the limits (an unclosed quote swallowing the file)."""
    MALFORMED = "FILE_MALFORMED"
    """CSV framing that cannot be read (e.g. an unclosed quote at the end)."""
    NOT_A_WORKBOOK = "FILE_NOT_A_WORKBOOK"
    """An XLSX that is not a valid workbook (not a zip, no worksheet...)."""
    WORKBOOK_TOO_LARGE = "FILE_WORKBOOK_TOO_LARGE"
    """An XLSX whose parts inflate past the limits (a zip bomb)."""


class FileRejected(Exception):
    """The file cannot be read as a table at all; the job fails with ``code``."""

    def __init__(self, code: FileProblem, message: str, *, row: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.row = row
