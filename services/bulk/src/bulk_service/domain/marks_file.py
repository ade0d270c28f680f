"""Marks files: the header's shape (long or wide) and each row's mark entries.

API.md "Bulk jobs": a long file has the columns ``student_number,subject_code,mark``
(any order), a wide file ``student_number`` and one column per subject code of
the exam. A mark cell is a number (a decimal point or a decimal comma), ``AB``
(absent) or ``EX`` (exempt), in any case. Header names match whatever their
case and surrounding spaces (see :func:`~bulk_service.domain.row_errors.header_key`).

Only what the file alone can tell is checked here, with no I/O: the shape, the
number format, that the subject belongs to the exam and that the mark is within
its maximum. Whether the student exists, whether the importer may write the
subject and duplicate (student, subject) pairs across the file are decided
later (results' answer, SQL over the staged entries); :func:`entry_key` is the
key those duplicates are found on.

Decisions:

* Long shape: a row is one entry; any problem of the row yields no entry, and
  every problem of the row is reported (not only the first), so one pass over
  the errors file fixes the row.
* Wide shape: every filled mark cell is its own entry, so a bad cell fails only
  itself and the row's other cells still count. An empty cell is no entry. A
  row whose student number is missing or too long fails every filled cell (one
  error on ``student_number``); a row with filled cells past the header is
  misaligned, so none of its cells is trusted.
* A mark with more than two decimals is refused unless the extra digits are
  zeros (``12.340`` is 12.34: what a spreadsheet exporting three places means).
  ``1,234`` is a decimal comma with three decimals (thousands separators are
  not accepted), hence ``TOO_MANY_DECIMALS``. A sign other than a leading
  ``-``, exponents, ``NaN``, ``Infinity`` and non-ASCII digits are
  ``NOT_A_NUMBER``; ``-0`` is 0.

``parse_row`` runs once per data row of files of up to a million rows, so the
column positions, the subject lookup and the messages are worked out once, from
the header, and the mark parser uses ``str`` methods rather than a regex.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

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
    "ABSENT",
    "EXEMPT",
    "LONG_COLUMNS",
    "MAX_KEY_LENGTH",
    "PRESENT",
    "ExamSubject",
    "HeaderRejected",
    "MarkCellError",
    "MarkEntry",
    "MarksLayout",
    "Shape",
    "entry_key",
    "parse_mark_cell",
    "read_marks_header",
    "template_header",
]

MAX_KEY_LENGTH = 64
"""Longest student number or subject code a row may name (results stores no longer)."""

STUDENT = "student_number"
SUBJECT = "subject_code"
MARK = "mark"
LONG_COLUMNS = (STUDENT, SUBJECT, MARK)

PRESENT = "present"
ABSENT = "absent"
EXEMPT = "exempt"

_ABSENT_CELL = ("absent", None)
_EXEMPT_CELL = ("exempt", None)
_SUBJECT_CACHE_LIMIT = 1024
"""Spellings of subject codes remembered per file; a file with endless distinct
(wrong) spellings only loses the shortcut."""
_MARK_CACHE_LIMIT = 16_384
"""Mark cells remembered per file. Marks repeat (a file of a million cells holds
a few hundred distinct texts), and a dictionary hit costs a tenth of parsing."""


class Shape(StrEnum):
    """The two layouts of a marks file (the template's ``shape``)."""

    LONG = "long"
    WIDE = "wide"


@dataclass(frozen=True)
class ExamSubject:
    """A subject of the exam being imported into, as results describes it."""

    code: str
    """The exam's spelling; entries carry this one whatever the file wrote."""
    max_mark: Decimal


@dataclass(frozen=True, slots=True)
class MarkEntry:
    """One (student, subject) mark a file asks to write."""

    row: int
    student_number: str
    """Stripped of surrounding spaces."""
    subject_code: str
    """The exam's spelling of the code."""
    status: str
    """``present``, ``absent`` or ``exempt``."""
    mark: Decimal | None
    """At most two decimals; None unless present."""


class MarkCellError(ValueError):
    """A mark cell that is not a mark; ``code`` is the detail code of the errors file."""

    def __init__(self, code: DetailCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_NOT_A_NUMBER = "Not a mark: a mark cell holds a number (79.5 or 79,5), AB or EX."


def parse_mark_cell(text: str) -> tuple[str, Decimal | None]:
    """``(status, mark)`` of a mark cell, not yet compared with a subject's maximum.

    Raises :class:`MarkCellError` (``MARK_REQUIRED`` for a blank cell,
    ``NOT_A_NUMBER``, ``TOO_MANY_DECIMALS``, ``MARK_OUT_OF_RANGE`` when negative).
    """
    cell = text.strip()
    if len(cell) == 2:
        upper = cell.upper()
        if upper == "AB":
            return _ABSENT_CELL
        if upper == "EX":
            return _EXEMPT_CELL
    elif not cell:
        raise MarkCellError(DetailCode.MARK_REQUIRED, "No mark: write a number, AB or EX.")
    negative = cell[0] == "-"
    digits = cell[1:] if negative else cell
    if "," in digits:
        digits = digits.replace(",", ".")  # a decimal comma; thousands separators fail below
    whole, _, fraction = digits.partition(".")
    if not (
        digits.isascii()
        and (whole or fraction)
        and (not whole or whole.isdigit())
        and (not fraction or fraction.isdigit())
    ):
        raise MarkCellError(DetailCode.NOT_A_NUMBER, _NOT_A_NUMBER)
    if len(fraction) > 2:
        if fraction[2:].strip("0"):
            raise MarkCellError(
                DetailCode.TOO_MANY_DECIMALS,
                "A mark has at most two decimals (and no thousands separators).",
            )
        digits = f"{whole or '0'}.{fraction[:2]}"
    mark = Decimal(digits)
    if negative and mark:
        raise MarkCellError(DetailCode.MARK_OUT_OF_RANGE, "A mark cannot be negative.")
    return PRESENT, mark


class MarksLayout:
    """Where a marks file's columns are, worked out once from its header.

    Built by :func:`read_marks_header`; :meth:`parse_row` turns each data row
    into entries and errors.
    """

    def __init__(
        self,
        shape: Shape,
        columns: Sequence[str],
        student_at: int,
        subject_at: int,
        mark_at: int,
        wide_columns: Sequence[tuple[int, ExamSubject]],
        subjects: Sequence[ExamSubject],
    ) -> None:
        self.shape = shape
        self.columns = tuple(columns)
        """The header as the file spells it, padding removed (errors name columns so)."""
        self._long = shape is Shape.LONG
        self._width = len(columns)
        self._student_at = student_at
        self._subject_at = subject_at
        self._mark_at = mark_at
        self._wide = tuple(
            (index, subject, self.columns[index], subject.max_mark)
            for index, subject in sorted(wide_columns, key=lambda pair: pair[0])
        )
        self._by_key = {header_key(subject.code): subject for subject in subjects}
        # Raw cell text -> subject, seeded with the exam's spellings: most rows
        # hit it without stripping or folding anything.
        self._subject_cache: dict[str, ExamSubject] = {s.code: s for s in subjects}
        self._student_label = self.columns[student_at]
        self._marks: dict[str, tuple[str, Decimal | None]] = {}
        self._out_of_range = {
            subject.code: f"The mark must be between 0 and {subject.max_mark}."
            for subject in subjects
        }

    @property
    def mark_columns(self) -> tuple[int, ...]:
        """Indexes of the mark cells of a row (wide: one per subject; long: the mark)."""
        if self._long:
            return (self._mark_at,)
        return tuple(index for index, _, _, _ in self._wide)

    def parse_row(self, row: SheetRow) -> tuple[list[MarkEntry], list[RowError]]:
        """The entries of one data row and the problems found in it."""
        if self._long:
            return self._parse_long(row)
        return self._parse_wide(row)

    # -- long ------------------------------------------------------------------

    def _parse_long(self, row: SheetRow) -> tuple[list[MarkEntry], list[RowError]]:
        cells = row.cells
        number = row.number
        errors: list[RowError] = []
        width = self._width
        if len(cells) != width:
            if len(cells) < width:
                cells = cells + ("",) * (width - len(cells))
            else:
                self._check_extra(number, cells, errors)
        student = cells[self._student_at].strip()
        if not student or len(student) > MAX_KEY_LENGTH:
            errors.append(self._student_problem(number, student))
        code = cells[self._subject_at]
        subject = self._subject_cache.get(code)
        if subject is None:
            subject = self._find_subject(number, code, errors)
        mark_text = cells[self._mark_at]
        parsed = self._marks.get(mark_text)
        if parsed is None:
            try:
                parsed = self._parse_mark(mark_text)
            except MarkCellError as bad:
                column = self.columns[self._mark_at]
                errors.append(self._mark_problem(number, column, bad, mark_text))
                return [], errors
        status, mark = parsed
        if subject is None or errors:
            return [], errors
        if mark is not None and mark > subject.max_mark:
            errors.append(self._too_high(number, self.columns[self._mark_at], subject, mark_text))
            return [], errors
        return [MarkEntry(number, student, subject.code, status, mark)], errors

    def _find_subject(self, number: int, code: str, errors: list[RowError]) -> ExamSubject | None:
        column = self.columns[self._subject_at]
        key = header_key(code)
        if not key:
            errors.append(RowError(number, column, DetailCode.REQUIRED, "No subject code.", ""))
            return None
        if len(key) > MAX_KEY_LENGTH:
            errors.append(
                RowError(
                    number,
                    column,
                    DetailCode.TOO_LONG,
                    f"A subject code has at most {MAX_KEY_LENGTH} characters.",
                    shown(code.strip()),
                )
            )
            return None
        subject = self._by_key.get(key)
        if subject is None:
            errors.append(
                RowError(
                    number,
                    column,
                    DetailCode.SUBJECT_NOT_FOUND,
                    f"The exam has no subject {code.strip()!r}.",
                    shown(code.strip()),
                )
            )
            return None
        if len(self._subject_cache) < _SUBJECT_CACHE_LIMIT:
            self._subject_cache[code] = subject
        return subject

    # -- wide ------------------------------------------------------------------

    def _parse_wide(self, row: SheetRow) -> tuple[list[MarkEntry], list[RowError]]:
        cells = row.cells
        number = row.number
        size = len(cells)
        errors: list[RowError] = []
        entries: list[MarkEntry] = []
        if size > self._width:
            self._check_extra(number, cells, errors)
        student = cells[self._student_at].strip() if self._student_at < size else ""
        filled = False
        marks = self._marks
        for index, subject, column, max_mark in self._wide:
            if index >= size:
                break
            text = cells[index]
            parsed = marks.get(text)
            if parsed is None:
                if not text or text.isspace():
                    continue
                try:
                    parsed = self._parse_mark(text)
                except MarkCellError as bad:
                    filled = True
                    errors.append(self._mark_problem(number, column, bad, text))
                    continue
            filled = True
            status, mark = parsed
            if mark is not None and mark > max_mark:
                errors.append(self._too_high(number, column, subject, text))
                continue
            entries.append(MarkEntry(number, student, subject.code, status, mark))
        if not student or len(student) > MAX_KEY_LENGTH:
            if filled:
                errors.insert(0, self._student_problem(number, student))
            return [], errors
        if errors and errors[0].column == "":
            return [], errors  # cells past the header: the row is misaligned
        return entries, errors

    # -- shared ----------------------------------------------------------------

    def _parse_mark(self, text: str) -> tuple[str, Decimal | None]:
        """:func:`parse_mark_cell`, remembering the good cells (Decimals are immutable)."""
        parsed = parse_mark_cell(text)
        if len(self._marks) < _MARK_CACHE_LIMIT:
            self._marks[text] = parsed
        return parsed

    def _check_extra(self, number: int, cells: tuple[str, ...], errors: list[RowError]) -> None:
        for text in cells[self._width :]:
            if text and not text.isspace():
                errors.append(
                    RowError(
                        number,
                        "",
                        DetailCode.NOT_ALLOWED,
                        f"The row has a cell past the header's {self._width} columns.",
                        shown(text.strip()),
                    )
                )
                return

    def _student_problem(self, number: int, student: str) -> RowError:
        if not student:
            return RowError(
                number, self._student_label, DetailCode.REQUIRED, "No student number.", ""
            )
        return RowError(
            number,
            self._student_label,
            DetailCode.TOO_LONG,
            f"A student number has at most {MAX_KEY_LENGTH} characters.",
            shown(student),
        )

    @staticmethod
    def _mark_problem(number: int, column: str, bad: MarkCellError, text: str) -> RowError:
        return RowError(number, column, bad.code, bad.message, shown(text.strip()))

    def _too_high(self, number: int, column: str, subject: ExamSubject, text: str) -> RowError:
        message = self._out_of_range[subject.code]
        return RowError(number, column, DetailCode.MARK_OUT_OF_RANGE, message, shown(text.strip()))


def read_marks_header(header: SheetRow, subjects: Sequence[ExamSubject]) -> MarksLayout:
    """The layout of a marks file from its header row.

    Raises :class:`HeaderRejected` naming every problem: no ``student_number``
    column, a long header without ``subject_code`` or ``mark``, an unknown
    column (``UNKNOWN_COLUMN`` in the long shape, ``SUBJECT_NOT_FOUND`` in the
    wide one), a column given twice, an unnamed column between named ones, a
    wide header without any subject column.
    """
    labels = [header_label(name) for name in header.cells]
    keys = [label.casefold() for label in labels]
    by_key = {header_key(subject.code): subject for subject in subjects}
    number = header.number
    errors: list[RowError] = []
    at: dict[str, int] = {}
    for index, key in enumerate(keys):
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
                    labels[index],
                    DetailCode.DUPLICATE_ENTRY,
                    f"The column {labels[index]!r} appears twice in the header.",
                    shown(labels[index]),
                )
            )
        else:
            at[key] = index
    if STUDENT not in at:
        errors.append(
            RowError(
                number,
                STUDENT,
                DetailCode.REQUIRED,
                "The header has no student_number column.",
                "",
            )
        )
    # A subject coded "mark" makes a wide header with a "mark" column.
    long = SUBJECT in at or (MARK in at and MARK not in by_key)
    if long:
        for name in (SUBJECT, MARK):
            if name not in at:
                errors.append(
                    RowError(
                        number,
                        name,
                        DetailCode.REQUIRED,
                        f"The header has no {name} column: a long marks file has the "
                        "columns student_number, subject_code and mark.",
                        "",
                    )
                )
        for key, index in at.items():
            if key not in LONG_COLUMNS:
                errors.append(
                    RowError(
                        number,
                        labels[index],
                        FileDetailCode.UNKNOWN_COLUMN,
                        f"Unknown column {labels[index]!r}: a long marks file has the "
                        "columns student_number, subject_code and mark.",
                        shown(labels[index]),
                    )
                )
    else:
        subject_keys = [key for key in at if key != STUDENT]
        if not subject_keys and STUDENT in at:
            errors.append(
                RowError(
                    number,
                    "",
                    DetailCode.REQUIRED,
                    "The header has no mark columns: a wide marks file has a column per "
                    "subject code, a long one the columns subject_code and mark.",
                    "",
                )
            )
        for key in subject_keys:
            if key not in by_key:
                label = labels[at[key]]
                errors.append(
                    RowError(
                        number,
                        label,
                        DetailCode.SUBJECT_NOT_FOUND,
                        f"The exam has no subject {label!r} (a wide marks file has "
                        "student_number and one column per subject code).",
                        shown(label),
                    )
                )
    if errors:
        raise HeaderRejected(errors)
    if long:
        return MarksLayout(Shape.LONG, labels, at[STUDENT], at[SUBJECT], at[MARK], (), subjects)
    wide = [(index, by_key[key]) for key, index in at.items() if key != STUDENT]
    return MarksLayout(Shape.WIDE, labels, at[STUDENT], -1, -1, wide, subjects)


def entry_key(entry: MarkEntry) -> tuple[str, str]:
    """What makes two entries the same pair (duplicates are errors on every row).

    Entries from :meth:`MarksLayout.parse_row` are already normalised; the key
    strips again so that entries built elsewhere compare the same way.
    """
    return entry.student_number.strip(), entry.subject_code


def template_header(shape: Shape, subjects: Sequence[ExamSubject]) -> list[str]:
    """The header row of an empty marks file for the exam (the import template)."""
    if shape is Shape.LONG:
        return list(LONG_COLUMNS)
    return [STUDENT, *(subject.code for subject in subjects)]
