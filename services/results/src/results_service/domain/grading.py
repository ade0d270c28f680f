"""The results arithmetic of RESULTS.md, as pure functions.

Every rounding is ROUND_HALF_UP to two decimals, applied once to the exact
value at the three steps RESULTS.md names: a subject's percentage, the
overall percentage and the gpa.  Sums (``total``, ``max_total``, the gpa's
numerator and denominator) are exact.

Entries whose ``subject_code`` is not a subject of the exam (for example
marks left over after a subject was removed from the exam) are ignored: they
neither make a student a candidate nor appear in a result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction

from .decimal_math import (
    ZERO,
    exact_product,
    exact_sum,
    percent_of,
    round_half_up_2,
)
from .models import (
    ExamRules,
    GradeBand,
    MarkEntry,
    MarkStatus,
    RankMethod,
    ResultStatus,
    StudentResult,
    Subject,
    SubjectResult,
)

__all__ = [
    "assign_ranks",
    "band_for",
    "compute_student_result",
    "generate_results",
    "result_sort_key",
]


def band_for(percentage: Decimal, scale: Iterable[GradeBand]) -> GradeBand:
    """The band with the largest ``min_percent`` <= ``percentage``.

    The scale may be in any order.  Raises ``ValueError`` when no band
    applies (a valid scale has a 0 band, so only a negative percentage or an
    invalid scale can do that).
    """
    best: GradeBand | None = None
    for band in scale:
        if band.min_percent <= percentage and (best is None or band.min_percent > best.min_percent):
            best = band
    if best is None:
        raise ValueError(f"no grade band covers {percentage}%")
    return best


def _subject_result(
    subject: Subject, entry: MarkEntry, scale: Sequence[GradeBand]
) -> SubjectResult:
    if entry.status == MarkStatus.EXEMPT:
        return SubjectResult(subject.code, MarkStatus.EXEMPT, None, None, None, None, None)
    if entry.status == MarkStatus.ABSENT:
        mark = ZERO
    elif entry.mark is None:
        raise ValueError(
            f"present mark without a value: {entry.student_number}/{entry.subject_code}"
        )
    else:
        mark = exact_sum([entry.mark])
    percentage = percent_of(mark, subject.max_mark)
    band = band_for(percentage, scale)
    passed = entry.status == MarkStatus.PRESENT and mark >= subject.pass_mark
    return SubjectResult(
        code=subject.code,
        status=entry.status,
        mark=mark,
        percentage=percentage,
        grade=band.grade,
        points=band.points,
        passed=passed,
    )


@dataclass(frozen=True, slots=True)
class _Counted:
    subject: Subject
    row: SubjectResult


def _result_for(
    rules: ExamRules, student_number: str, by_code: dict[str, MarkEntry]
) -> StudentResult:
    rows: list[SubjectResult] = []
    counted: list[_Counted] = []
    missing = False
    for subject in rules.subjects:
        entry = by_code.get(subject.code)
        if entry is None:
            missing = True
            continue
        row = _subject_result(subject, entry, rules.grading_scale)
        rows.append(row)
        if row.status != MarkStatus.EXEMPT:
            counted.append(_Counted(subject, row))

    if missing:
        return StudentResult(
            student_number=student_number,
            status=ResultStatus.INCOMPLETE,
            total=None,
            max_total=None,
            percentage=None,
            grade=None,
            gpa=None,
            passed=None,
            rank=None,
            subjects=tuple(rows),
        )

    total = exact_sum(c.row.mark for c in counted if c.row.mark is not None)
    max_total = exact_sum(c.subject.max_mark for c in counted)
    if not counted:
        # Every subject exempt: sums over nothing are 0.00, the rest is null.
        return StudentResult(
            student_number=student_number,
            status=ResultStatus.COMPLETE,
            total=total,
            max_total=max_total,
            percentage=None,
            grade=None,
            gpa=None,
            passed=None,
            rank=None,
            subjects=tuple(rows),
        )

    percentage = percent_of(total, max_total)
    grade = band_for(percentage, rules.grading_scale).grade
    weighted_points = exact_sum(
        exact_product(c.row.points, c.subject.credits) for c in counted if c.row.points is not None
    )
    credits = exact_sum(c.subject.credits for c in counted)
    gpa = round_half_up_2(Fraction(weighted_points) / Fraction(credits))
    passed = all(c.row.passed for c in counted) and percentage >= rules.pass_percent
    return StudentResult(
        student_number=student_number,
        status=ResultStatus.COMPLETE,
        total=total,
        max_total=max_total,
        percentage=percentage,
        grade=grade,
        gpa=gpa,
        passed=passed,
        rank=None,
        subjects=tuple(rows),
    )


def _index_entries(
    rules: ExamRules, entries: Iterable[MarkEntry]
) -> dict[str, dict[str, MarkEntry]]:
    """Entries of exam subjects grouped by student then subject; duplicates raise."""
    codes = {subject.code for subject in rules.subjects}
    grouped: dict[str, dict[str, MarkEntry]] = {}
    for entry in entries:
        if entry.subject_code not in codes:
            continue
        per_student = grouped.setdefault(entry.student_number, {})
        if entry.subject_code in per_student:
            raise ValueError(f"duplicate entry for {entry.student_number}/{entry.subject_code}")
        per_student[entry.subject_code] = entry
    return grouped


def compute_student_result(rules: ExamRules, entries: Iterable[MarkEntry]) -> StudentResult:
    """One student's result from that student's entries (``rank`` is ``None``).

    Raises ``ValueError`` if *entries* is empty, mixes students, or holds two
    entries for the same subject.  Entries for subjects outside the exam are
    ignored; if no entry is left the result is ``incomplete`` with no subject
    rows (the student is not a candidate).
    """
    entry_list = list(entries)
    if not entry_list:
        raise ValueError("no entries: cannot tell which student this is")
    student_number = entry_list[0].student_number
    if any(entry.student_number != student_number for entry in entry_list):
        raise ValueError("entries of more than one student")
    by_code = _index_entries(rules, entry_list).get(student_number, {})
    return _result_for(rules, student_number, by_code)


def _rankable(result: StudentResult) -> bool:
    return result.status == ResultStatus.COMPLETE and result.percentage is not None


def assign_ranks(results: Iterable[StudentResult], method: RankMethod) -> list[StudentResult]:
    """The same results, in the same order, with ``rank`` set.

    Complete results with a percentage are ranked by that (already rounded)
    percentage, highest first; equal percentages share a rank.  Competition:
    rank = 1 + number of strictly better results (1, 1, 3).  Dense: rank = 1 +
    number of distinct better percentages (1, 1, 2).  Every other result gets
    ``rank=None``.
    """
    result_list = list(results)
    method = RankMethod(method)
    ordered = sorted(
        (r.percentage for r in result_list if _rankable(r) and r.percentage is not None),
        reverse=True,
    )
    rank_of: dict[Decimal, int] = {}
    distinct = 0
    for position, percentage in enumerate(ordered, start=1):
        if percentage not in rank_of:
            distinct += 1
            rank_of[percentage] = position if method == RankMethod.COMPETITION else distinct
    return [
        replace(
            r,
            rank=rank_of[r.percentage] if _rankable(r) and r.percentage is not None else None,
        )
        for r in result_list
    ]


def result_sort_key(result: StudentResult) -> tuple[bool, int, str]:
    """Listing order: by rank (nulls last), then student_number."""
    return (result.rank is None, result.rank or 0, result.student_number)


def generate_results(rules: ExamRules, entries: Iterable[MarkEntry]) -> list[StudentResult]:
    """Results of every candidate (a student with at least one entry for a
    subject of the exam), ranked with ``rules.rank_method`` and ordered by
    rank (nulls last), then student_number.

    Raises ``ValueError`` on two entries for the same (student, subject).
    """
    grouped = _index_entries(rules, entries)
    results = [
        _result_for(rules, student_number, by_code) for student_number, by_code in grouped.items()
    ]
    ranked = assign_ranks(results, rules.rank_method)
    ranked.sort(key=result_sort_key)
    return ranked
