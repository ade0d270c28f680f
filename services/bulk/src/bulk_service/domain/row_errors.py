"""What the marks and users file rules share: one row's problem, and header matching.

A :class:`RowError` is one line of a job's errors file
(``row,column,code,message,value``, API.md "Bulk jobs"). Codes come from
:class:`service_kit.detail_codes.DetailCode` wherever one fits, so a client
reads the same code for the same problem whether it typed the mark in the UI
or uploaded it; :class:`FileDetailCode` holds the few problems only a file
can have.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MAX_SHOWN_VALUE = 200
"""An offending value is shown cut to this length: a 10,000-character cell is not
echoed whole into every line of the errors file."""

_HEADER_STRIP = " \t\r\n\ufeff\u00a0\u200b\u2007\u202f"
"""Around a header name: spaces, a stray byte-order mark (a file saved twice, or a
BOM that survived in a workbook cell) and the no-break spaces spreadsheets paste."""


class FileDetailCode(StrEnum):
    """Detail codes of problems that only an uploaded file can have.

    Not in the kit's catalog (they never stand in an API error's ``details``);
    they appear in a job's errors file only.
    """

    UNKNOWN_COLUMN = "UNKNOWN_COLUMN"
    """The header names a column the file kind does not have (a typo, an extra
    column such as ``name`` in a long marks file)."""


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem of one row (or of the header, row 1)."""

    row: int
    """File row; the header is row 1, as the user sees it in a spreadsheet."""
    column: str
    """The column as the file spells it, or "" for the whole row."""
    code: str
    message: str
    value: str
    """The offending text, at most :data:`MAX_SHOWN_VALUE` characters; never a password."""


class HeaderRejected(Exception):
    """The header row cannot be used; ``errors`` name every problem (row 1, its column).

    The message lists the problems for a person, since the job fails as a whole
    with it.
    """

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__("; ".join(error.message for error in errors))
        self.errors = errors


def shown(value: str) -> str:
    """``value`` as an error may show it: cut to :data:`MAX_SHOWN_VALUE` characters."""
    return value if len(value) <= MAX_SHOWN_VALUE else value[:MAX_SHOWN_VALUE]


def header_key(name: str) -> str:
    """The form header names are compared in: ``" \\ufeffStudent_Number "`` is
    ``student_number``. People type headers by hand; case and padding carry no meaning."""
    return name.strip(_HEADER_STRIP).casefold()


def header_label(name: str) -> str:
    """A header name as errors show it: the file's spelling without the padding."""
    return name.strip(_HEADER_STRIP)
