"""Results as export rows: one JSON line of results' internal export in, one row out.

The export columns are fixed by API.md ("Bulk jobs"): ``student_number,
student_name,status,total,max_total,percentage,grade,gpa,passed,rank``, then
one mark column per subject code in the exam's subject order.

Each line is the JSON that PostgreSQL builds in results' ``store/results.py``:
NUMERIC columns arrive as JSON numbers that keep their two-decimal text
(``79.50``), a subject's ``mark`` is ``0.00`` when absent and null when exempt,
``rank`` is an integer, ``passed`` a boolean or null. Numbers are parsed with
``parse_float=Decimal`` so ``79.505`` never becomes ``79.50499999...``; a
number sent as a decimal string is accepted too, as the API's Decimal
convention allows either on the wire.

Rows are lists of ``Cell`` values, the types the writers know how to encode:
text, ``Decimal`` (a measurement), ``int`` (a count or rank), ``bool`` and
``None`` (an empty cell). This module does no I/O and no formatting.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

Cell = str | Decimal | int | bool | None
"""One cell as the writers take it; ``None`` is an empty cell."""

FIXED_COLUMNS: tuple[str, ...] = (
    "student_number",
    "student_name",
    "status",
    "total",
    "max_total",
    "percentage",
    "grade",
    "gpa",
    "passed",
    "rank",
)

ABSENT = "AB"
EXEMPT = "EX"


class BadResultLine(ValueError):
    """A line of the results stream that is not a Result as API.md describes it.

    Raised rather than skipped: an export that silently drops a student is
    worse than a failed job that says why.
    """


def export_columns(subject_codes: Sequence[str]) -> tuple[str, ...]:
    """The header of an exam's export: the fixed columns then the subject codes in order."""
    return (*FIXED_COLUMNS, *subject_codes)


def export_rows(lines: Iterable[bytes | str], subject_codes: Sequence[str]) -> Iterator[list[Cell]]:
    """One row per non-blank line of the results NDJSON, lazily, in the stream's order.

    Lazily so that an export of any size holds one batch of the stream, never
    the whole exam.
    """
    codes = tuple(subject_codes)
    for line in lines:
        if not line.strip():
            continue
        yield export_row(parse_result_line(line), codes)


def parse_result_line(line: bytes | str) -> dict[str, Any]:
    """A JSON line as a dict whose fractional numbers are ``Decimal``, never ``float``."""
    try:
        result = json.loads(line, parse_float=Decimal)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadResultLine(f"a results line is not JSON: {error}") from None
    if not isinstance(result, dict):
        raise BadResultLine("a results line is not a JSON object")
    return result


def export_row(result: Mapping[str, Any], subject_codes: Sequence[str]) -> list[Cell]:
    """The export row of one Result, columns as ``export_columns(subject_codes)``.

    A subject cell is its mark, ``AB`` when absent (results says mark 0.00
    then, which would read as a mark of zero), ``EX`` when exempt, and empty
    when the result has no entry for that subject (an incomplete result lists
    only the subjects that have one).
    """
    marks: dict[str, Cell] = {}
    subjects = result.get("subjects") or []
    if not isinstance(subjects, list):
        raise BadResultLine("subjects is not a list")
    for subject in subjects:
        code = subject.get("code") if isinstance(subject, dict) else None
        if not isinstance(code, str):
            raise BadResultLine(f"a subject without a code: {subject!r}")
        status = subject.get("status")
        if status == "absent":
            marks[code] = ABSENT
        elif status == "exempt":
            marks[code] = EXEMPT
        else:
            marks[code] = _decimal(subject.get("mark"), f"the mark of {code}")
    return [
        _text(result.get("student_number")),
        _text(result.get("student_name")),
        _text(result.get("status")),
        _decimal(result.get("total"), "total"),
        _decimal(result.get("max_total"), "max_total"),
        _decimal(result.get("percentage"), "percentage"),
        _text(result.get("grade")),
        _decimal(result.get("gpa"), "gpa"),
        _boolean(result.get("passed")),
        _integer(result.get("rank")),
        *[marks.get(code) for code in subject_codes],
    ]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _decimal(value: Any, field: str) -> Decimal | None:
    # bool is an int: ``true`` as a total is a broken line, not the number 1.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise BadResultLine(f"{field} is not a number: {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise BadResultLine(f"{field} is not a number: {value!r}") from None
    # Decimal("NaN") and Decimal("Infinity") parse; no spreadsheet cell means them.
    if not number.is_finite():
        raise BadResultLine(f"{field} is not a finite number: {value!r}")
    return number


def _integer(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadResultLine(f"rank is not an integer: {value!r}")
    return value


def _boolean(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise BadResultLine(f"passed is not a boolean: {value!r}")
