"""Results as export rows: one JSON line of results' internal export in, one row out.

The export columns are fixed by API.md ("Bulk jobs"): ``student_number,
student_name,status,total,max_total,percentage,grade,gpa,passed,rank``, then
one mark column per subject code in the exam's subject order.

Each line is the JSON of results' internal export (its fields joined as text by
PostgreSQL, its subjects placed from their stored text by results' service,
``store/results.py``): NUMERIC columns arrive as JSON numbers that keep their two-decimal text
(``79.50``), a subject's ``mark`` is ``0.00`` when absent and null when exempt,
``rank`` is an integer, ``passed`` a boolean or null. A number sent as a
decimal string is accepted too, as the API's Decimal convention allows either
on the wire.

Lines are parsed with orjson (about ten times the standard library's speed,
which was the largest share of an export's time). orjson reads fractional
numbers as ``float``; each becomes the ``Decimal`` of its ``repr``, which is
exact: ``repr`` is the shortest text that reads back as the same float, and
every decimal of at most 15 significant digits reads back as itself, so
``79.50`` comes back as ``Decimal("79.5")`` and ``79.505`` as
``Decimal("79.505")``, never ``79.50499999...``. results' numbers are
``NUMERIC(12, 2)`` at most (12 significant digits, API.md: at most two
decimals), well inside that bound.

Rows are lists of ``Cell`` values, the types the writers know how to encode:
text, ``Decimal`` (a measurement), ``int`` (a count or rank), ``bool`` and
``None`` (an empty cell). This module does no I/O and no formatting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

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
    to_rows = rows_function(subject_codes)
    for line in lines:
        if not line.strip():
            continue
        yield from to_rows([line])


RowsOfLines = Callable[[Sequence[bytes | str]], list[list[Cell]]]
"""Non-blank results lines in, their export rows out."""


def rows_function(subject_codes: Sequence[str]) -> RowsOfLines:
    """A function from a batch of non-blank results lines to their export rows, in order.

    One function per export: it keeps a bounded cache of the ``Decimal`` of
    each float it has met (an export repeats the same few thousand marks,
    totals and percentages), and a batch is turned into rows in one call, so
    the per-line cost is orjson's parse and one pass over the fields.
    """
    codes = tuple(subject_codes)
    numbers: dict[float, Decimal] = {}
    loads = orjson.loads

    def number(value: Any, field: str) -> Decimal | None:
        if type(value) is float:
            found = numbers.get(value)
            if found is None:
                found = _decimal(value, field)
                if len(numbers) >= _NUMBER_CACHE_SIZE:
                    numbers.clear()
                numbers[value] = found  # type: ignore[assignment]
            return found
        return _decimal(value, field)

    lookup = numbers.get

    def to_rows(lines: Sequence[bytes | str]) -> list[list[Cell]]:
        # The common shape inline (a cached float's Decimal is a type check and
        # a dict lookup, no call); anything else goes through ``_row``, which
        # checks every field and raises BadResultLine with what is wrong.
        rows: list[list[Cell]] = []
        append = rows.append
        for line in lines:
            try:
                result = loads(line)
            except orjson.JSONDecodeError as error:
                raise BadResultLine(f"a results line is not JSON: {error}") from None
            if type(result) is not dict:
                raise BadResultLine("a results line is not a JSON object")
            get = result.get
            subjects = get("subjects")
            rank = get("rank")
            passed = get("passed")
            if (
                type(subjects) is not list
                or (rank is not None and type(rank) is not int)
                or (passed is not None and type(passed) is not bool)
            ):
                append(_row(result, codes, number))
                continue
            marks: dict[str, Cell] = {}
            for subject in subjects:
                if type(subject) is not dict or type(code := subject.get("code")) is not str:
                    break
                status = subject.get("status")
                if status == "absent":
                    marks[code] = ABSENT
                elif status == "exempt":
                    marks[code] = EXEMPT
                else:
                    mark = subject.get("mark")
                    marks[code] = (
                        (lookup(mark) or number(mark, f"the mark of {code}"))
                        if type(mark) is float
                        else number(mark, f"the mark of {code}")
                    )
            else:
                total = get("total")
                max_total = get("max_total")
                percentage = get("percentage")
                gpa = get("gpa")
                name = get("student_name")
                append(
                    [
                        _text(get("student_number")),
                        name if type(name) is str else _text(name),
                        _text(get("status")),
                        (lookup(total) or number(total, "total"))
                        if type(total) is float
                        else number(total, "total"),
                        (lookup(max_total) or number(max_total, "max_total"))
                        if type(max_total) is float
                        else number(max_total, "max_total"),
                        (lookup(percentage) or number(percentage, "percentage"))
                        if type(percentage) is float
                        else number(percentage, "percentage"),
                        _text(get("grade")),
                        (lookup(gpa) or number(gpa, "gpa"))
                        if type(gpa) is float
                        else number(gpa, "gpa"),
                        passed,
                        rank,
                        *[marks.get(code) for code in codes],
                    ]
                )
                continue
            append(_row(result, codes, number))  # a broken subject: raises, naming it
        return rows

    return to_rows


def parse_result_line(line: bytes | str) -> dict[str, Any]:
    """A JSON line as a dict (fractional numbers as ``float``; see the module docstring)."""
    try:
        result = orjson.loads(line)
    except orjson.JSONDecodeError as error:  # also a ValueError (bad UTF-8 included)
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
    return _row(result, tuple(subject_codes), _decimal)


def _row(
    result: Mapping[str, Any],
    codes: tuple[str, ...],
    number: Callable[[Any, str], Decimal | None],
) -> list[Cell]:
    marks: dict[str, Cell] = {}
    subjects = result.get("subjects") or []
    if type(subjects) is not list:
        raise BadResultLine("subjects is not a list")
    for subject in subjects:
        code = subject.get("code") if type(subject) is dict else None
        if type(code) is not str:
            raise BadResultLine(f"a subject without a code: {subject!r}")
        status = subject.get("status")
        if status == "absent":
            marks[code] = ABSENT
        elif status == "exempt":
            marks[code] = EXEMPT
        else:
            marks[code] = number(subject.get("mark"), f"the mark of {code}")
    get = result.get
    rank = get("rank")
    if rank is not None and type(rank) is not int:
        raise BadResultLine(f"rank is not an integer: {rank!r}")
    passed = get("passed")
    if passed is not None and type(passed) is not bool:
        raise BadResultLine(f"passed is not a boolean: {passed!r}")
    return [
        _text(get("student_number")),
        _text(get("student_name")),
        _text(get("status")),
        number(get("total"), "total"),
        number(get("max_total"), "max_total"),
        number(get("percentage"), "percentage"),
        _text(get("grade")),
        number(get("gpa"), "gpa"),
        passed,
        rank,
        *[marks.get(code) for code in codes],
    ]


_NUMBER_CACHE_SIZE = 65_536


def _text(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    return str(value)


def _decimal(value: Any, field: str) -> Decimal | None:
    # bool is an int: ``true`` as a total is a broken line, not the number 1.
    if value is None:
        return None
    if type(value) is float:
        # repr: the shortest text that reads back as this float, so the
        # decimal the line was written with (module docstring).
        value = repr(value)
    elif isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise BadResultLine(f"{field} is not a number: {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise BadResultLine(f"{field} is not a number: {value!r}") from None
    # Decimal("NaN") and Decimal("Infinity") parse; no spreadsheet cell means them.
    if not number.is_finite():
        raise BadResultLine(f"{field} is not a finite number: {value!r}")
    return number
