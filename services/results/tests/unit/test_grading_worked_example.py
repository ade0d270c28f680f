"""The worked example of RESULTS.md, cell by cell."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import pytest
from results_service.domain import (
    ExamRules,
    GradeBand,
    MarkEntry,
    MarkStatus,
    RankMethod,
    ResultStatus,
    StudentResult,
    Subject,
    SubjectResult,
    compute_student_result,
    generate_results,
    validate_exam_definition,
)

PRESENT, ABSENT, EXEMPT = MarkStatus.PRESENT, MarkStatus.ABSENT, MarkStatus.EXEMPT

SUBJECTS = (
    Subject("MATH", max_mark=D("100"), pass_mark=D("40"), credits=D("2")),
    Subject("PHYS", max_mark=D("50"), pass_mark=D("20"), credits=D("1")),
)
SCALE = (
    GradeBand("A", D("80"), D("4")),
    GradeBand("B", D("60"), D("3")),
    GradeBand("C", D("40"), D("2")),
    GradeBand("F", D("0"), D("0")),
)


def rules(method: RankMethod = RankMethod.COMPETITION) -> ExamRules:
    return ExamRules(SUBJECTS, SCALE, pass_percent=D("40"), rank_method=method)


ENTRIES = (
    MarkEntry("S1", "MATH", PRESENT, D("79.5")),
    MarkEntry("S1", "PHYS", PRESENT, D("45")),
    MarkEntry("S2", "MATH", PRESENT, D("90")),
    MarkEntry("S2", "PHYS", ABSENT),
    MarkEntry("S3", "MATH", PRESENT, D("60")),
    MarkEntry("S3", "PHYS", EXEMPT),
    MarkEntry("S4", "MATH", PRESENT, D("70")),
)


def by_student(results: list[StudentResult]) -> dict[str, StudentResult]:
    return {r.student_number: r for r in results}


def test_definition_is_valid() -> None:
    assert validate_exam_definition(SUBJECTS, SCALE, D("40")) == []


# student, status, total, max, %, grade, gpa, passed, rank
TABLE = [
    ("S1", ResultStatus.COMPLETE, "124.5", "150", "83.00", "A", "3.33", True, 1),
    ("S2", ResultStatus.COMPLETE, "90", "150", "60.00", "B", "2.67", False, 2),
    ("S3", ResultStatus.COMPLETE, "60", "100", "60.00", "B", "3.00", True, 2),
    ("S4", ResultStatus.INCOMPLETE, None, None, None, None, None, None, None),
]


def _d(value: str | None) -> D | None:
    return None if value is None else D(value)


@pytest.mark.parametrize(
    ("student", "status", "total", "max_total", "pct", "grade", "gpa", "passed", "rank"),
    TABLE,
)
def test_table_row(
    student: str,
    status: ResultStatus,
    total: str | None,
    max_total: str | None,
    pct: str | None,
    grade: str | None,
    gpa: str | None,
    passed: bool | None,
    rank: int | None,
) -> None:
    result = by_student(generate_results(rules(), ENTRIES))[student]
    assert result.status == status
    assert result.total == _d(total)
    assert result.max_total == _d(max_total)
    assert result.percentage == _d(pct)
    assert result.grade == grade
    assert result.gpa == _d(gpa)
    assert result.passed is passed
    assert result.rank == rank


def test_rounded_values_are_written_with_two_decimals() -> None:
    result = by_student(generate_results(rules(), ENTRIES))
    assert str(result["S1"].percentage) == "83.00"
    assert str(result["S1"].gpa) == "3.33"
    assert str(result["S3"].gpa) == "3.00"
    assert str(result["S1"].total) == "124.50"
    assert str(result["S1"].max_total) == "150.00"


def test_order_is_rank_then_student_number() -> None:
    results = generate_results(rules(), ENTRIES)
    assert [(r.student_number, r.rank) for r in results] == [
        ("S1", 1),
        ("S2", 2),
        ("S3", 2),
        ("S4", None),
    ]


def test_dense_ranks_are_the_same_here() -> None:
    results = generate_results(rules(RankMethod.DENSE), ENTRIES)
    assert [(r.student_number, r.rank) for r in results] == [
        ("S1", 1),
        ("S2", 2),
        ("S3", 2),
        ("S4", None),
    ]


def test_s1_subject_rows() -> None:
    s1 = by_student(generate_results(rules(), ENTRIES))["S1"]
    assert s1.subjects == (
        # 79.50% is below the A band (80): grade B, 3 points.
        SubjectResult("MATH", PRESENT, D("79.5"), D("79.50"), "B", D("3"), True),
        SubjectResult("PHYS", PRESENT, D("45"), D("90.00"), "A", D("4"), True),
    )


def test_s2_subject_rows_absent_counts_zero_and_fails() -> None:
    s2 = by_student(generate_results(rules(), ENTRIES))["S2"]
    assert s2.subjects == (
        SubjectResult("MATH", PRESENT, D("90"), D("90.00"), "A", D("4"), True),
        SubjectResult("PHYS", ABSENT, D("0"), D("0.00"), "F", D("0"), False),
    )


def test_s3_subject_rows_exempt_is_all_null() -> None:
    s3 = by_student(generate_results(rules(), ENTRIES))["S3"]
    assert s3.subjects == (
        SubjectResult("MATH", PRESENT, D("60"), D("60.00"), "B", D("3"), True),
        SubjectResult("PHYS", EXEMPT, None, None, None, None, None),
    )


def test_s4_incomplete_lists_only_subjects_with_entries() -> None:
    s4 = by_student(generate_results(rules(), ENTRIES))["S4"]
    assert s4.subjects == (SubjectResult("MATH", PRESENT, D("70"), D("70.00"), "B", D("3"), True),)


@pytest.mark.parametrize("student", ["S1", "S2", "S3", "S4"])
def test_compute_student_result_matches_generation_except_rank(student: str) -> None:
    generated = by_student(generate_results(rules(), ENTRIES))[student]
    single = compute_student_result(rules(), [e for e in ENTRIES if e.student_number == student])
    assert single.rank is None
    assert single == replace(generated, rank=None)
