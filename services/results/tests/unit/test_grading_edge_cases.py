"""Table-driven edge cases of the results arithmetic and of validation."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D
from typing import Any, cast

import pytest
from results_service.domain import (
    DefinitionProblem,
    ExamRules,
    GradeBand,
    MarkEntry,
    MarkStatus,
    ProblemCode,
    RankMethod,
    ResultStatus,
    StudentResult,
    Subject,
    assign_ranks,
    band_for,
    compute_student_result,
    decimal_places,
    generate_results,
    validate_exam_definition,
    validate_mark,
)

PRESENT, ABSENT, EXEMPT = MarkStatus.PRESENT, MarkStatus.ABSENT, MarkStatus.EXEMPT
COMPETITION, DENSE = RankMethod.COMPETITION, RankMethod.DENSE

SCALE = (
    GradeBand("A", D("80"), D("4")),
    GradeBand("B", D("60"), D("3")),
    GradeBand("C", D("40"), D("2")),
    GradeBand("F", D("0"), D("0")),
)


def one_subject(
    max_mark: str = "100",
    pass_mark: str = "40",
    pass_percent: str = "0",
    method: RankMethod = COMPETITION,
    scale: tuple[GradeBand, ...] = SCALE,
) -> ExamRules:
    return ExamRules(
        (Subject("X", D(max_mark), D(pass_mark)),),
        scale,
        pass_percent=D(pass_percent),
        rank_method=method,
    )


def present(student: str, code: str, mark: str) -> MarkEntry:
    return MarkEntry(student, code, PRESENT, D(mark))


def only(rules: ExamRules, *entries: MarkEntry) -> StudentResult:
    return compute_student_result(rules, entries)


# --------------------------------------------------------------------------- bands


@pytest.mark.parametrize(
    ("percentage", "grade"),
    [
        ("100.00", "A"),
        ("80.00", "A"),
        ("80", "A"),
        ("79.99", "B"),
        ("60.00", "B"),
        ("59.99", "C"),
        ("40.00", "C"),
        ("39.99", "F"),
        ("0.01", "F"),
        ("0.00", "F"),
        ("150.00", "A"),
    ],
)
def test_band_for_boundaries(percentage: str, grade: str) -> None:
    assert band_for(D(percentage), SCALE).grade == grade
    assert band_for(D(percentage), tuple(reversed(SCALE))).grade == grade


def test_band_for_unsorted_scale() -> None:
    scale = (SCALE[2], SCALE[0], SCALE[3], SCALE[1])
    assert band_for(D("61"), scale) == SCALE[1]


@pytest.mark.parametrize(
    ("percentage", "scale"),
    [("-0.01", SCALE), ("10", (GradeBand("A", D("50"), D("1")),)), ("50", ())],
)
def test_band_for_without_a_band_raises(percentage: str, scale: tuple[GradeBand, ...]) -> None:
    with pytest.raises(ValueError, match="no grade band"):
        band_for(D(percentage), scale)


# ---------------------------------------------------------------- subject rounding


@pytest.mark.parametrize(
    ("max_mark", "mark", "percentage", "grade"),
    [
        ("500", "399.97", "79.99", "B"),  # 79.994 -> 79.99 stays B
        ("200", "159.99", "80.00", "A"),  # 79.995 -> 80.00 crosses into A
        ("100", "79.5", "79.50", "B"),
        ("100", "80", "80.00", "A"),
        ("8", "0.01", "0.13", "F"),  # 0.125 -> 0.13 (half up, not half even)
        ("8", "0.03", "0.38", "F"),  # 0.375 -> 0.38
        ("3", "1", "33.33", "F"),
        ("3", "2", "66.67", "B"),
        ("100", "33.33", "33.33", "F"),
        ("0.03", "0.01", "33.33", "F"),
        ("100", "0", "0.00", "F"),
        ("100", "100", "100.00", "A"),
        ("100000", "59999.99", "60.00", "B"),  # 59.99999 -> 60.00
        ("100000", "59994.99", "59.99", "C"),  # 59.99499 -> 59.99
    ],
)
def test_subject_percentage_rounding(max_mark: str, mark: str, percentage: str, grade: str) -> None:
    result = only(one_subject(max_mark, "0"), present("S", "X", mark))
    row = result.subjects[0]
    assert row.percentage == D(percentage)
    assert str(row.percentage) == percentage
    assert row.grade == grade
    # With a single subject the overall percentage is the same number.
    assert result.percentage == D(percentage)
    assert result.grade == grade


# ---------------------------------------------------------------- overall rounding


def two_subjects(max_a: str, max_b: str, credits_a: str = "1", credits_b: str = "1") -> ExamRules:
    return ExamRules(
        (
            Subject("A", D(max_a), D("0"), D(credits_a)),
            Subject("B", D(max_b), D("0"), D(credits_b)),
        ),
        SCALE,
    )


@pytest.mark.parametrize(
    ("max_a", "max_b", "mark_a", "mark_b", "total", "percentage", "grade"),
    [
        ("100", "100", "80", "79.99", "159.99", "80.00", "A"),  # 79.995 -> 80.00
        ("300", "200", "250", "149.97", "399.97", "79.99", "B"),  # 79.994 -> 79.99
        ("300", "200", "250", "149.98", "399.98", "80.00", "A"),  # 79.996 -> 80.00
        ("0.1", "0.2", "0.1", "0.2", "0.30", "100.00", "A"),  # exact decimal sums
        ("3", "6", "1", "1", "2.00", "22.22", "F"),
    ],
)
def test_overall_percentage_uses_exact_total(
    max_a: str,
    max_b: str,
    mark_a: str,
    mark_b: str,
    total: str,
    percentage: str,
    grade: str,
) -> None:
    result = only(two_subjects(max_a, max_b), present("S", "A", mark_a), present("S", "B", mark_b))
    assert result.total == D(total)
    assert str(result.total) == total
    assert result.max_total == D(max_a) + D(max_b)
    assert result.percentage == D(percentage)
    assert result.grade == grade


def test_overall_percentage_is_not_a_mean_of_rounded_subject_percentages() -> None:
    # 1/3 and 1/3 -> 33.33 each, overall 2/6 = 33.33; 2/3 + 0/1000 shows weighting by max.
    result = only(two_subjects("3", "1000"), present("S", "A", "2"), present("S", "B", "0"))
    assert [r.percentage for r in result.subjects] == [D("66.67"), D("0.00")]
    assert result.percentage == D("0.20")  # 2 / 1003 = 0.1994... -> 0.20


# --------------------------------------------------------------------- gpa rounding


@pytest.mark.parametrize(
    ("points_a", "points_b", "credits_a", "credits_b", "gpa"),
    [
        ("3", "2", "1", "7", "2.13"),  # 17/8 = 2.125 -> 2.13 (half even would be 2.12)
        ("3.32", "3.33", "1", "1", "3.33"),  # 3.325 -> 3.33 (half even would be 3.32)
        ("3.33", "3.34", "1", "1", "3.34"),  # 3.335 -> 3.34
        ("4", "0", "2", "1", "2.67"),  # 2.666...
        ("3", "4", "2", "1", "3.33"),  # 3.333...
        ("4", "0", "1", "2", "1.33"),
        ("4", "3", "0.5", "1.5", "3.25"),  # fractional credits
        ("1", "2", "1", "1", "1.50"),
        ("0", "0", "1", "1", "0.00"),
    ],
)
def test_gpa_rounding_and_credit_weighting(
    points_a: str, points_b: str, credits_a: str, credits_b: str, gpa: str
) -> None:
    # Subject A scores 90% and subject B 10%; the scale maps them to the given points.
    scale = (
        GradeBand("HIGH", D("90"), D(points_a)),
        GradeBand("LOW", D("0"), D(points_b)),
    )
    rules = ExamRules(
        (
            Subject("A", D("100"), D("0"), D(credits_a)),
            Subject("B", D("100"), D("0"), D(credits_b)),
        ),
        scale,
    )
    result = only(rules, present("S", "A", "90"), present("S", "B", "10"))
    assert [r.points for r in result.subjects] == [D(points_a), D(points_b)]
    assert result.gpa == D(gpa)
    assert str(result.gpa) == gpa
    assert result.percentage == D("50.00")  # credits never weight the percentage


def test_credits_weight_gpa_not_percentage() -> None:
    entries = (present("S", "A", "90"), present("S", "B", "30"))
    light = only(two_subjects("100", "100", "1", "1"), *entries)
    heavy = only(two_subjects("100", "100", "3", "1"), *entries)
    assert light.percentage == heavy.percentage == D("60.00")
    assert light.gpa == D("2.00")  # (4 + 0) / 2
    assert heavy.gpa == D("3.00")  # (4*3 + 0) / 4


# --------------------------------------------------------------- statuses and pass


def test_all_exempt() -> None:
    rules = two_subjects("100", "50")
    result = only(rules, MarkEntry("S", "A", EXEMPT), MarkEntry("S", "B", EXEMPT))
    assert result.status == ResultStatus.COMPLETE
    assert result.total == D("0") and str(result.total) == "0.00"
    assert result.max_total == D("0") and str(result.max_total) == "0.00"
    assert (result.percentage, result.grade, result.gpa, result.passed, result.rank) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert [(r.code, r.status, r.mark, r.passed) for r in result.subjects] == [
        ("A", EXEMPT, None, None),
        ("B", EXEMPT, None, None),
    ]


def test_all_exempt_is_not_ranked_among_others() -> None:
    rules = two_subjects("100", "50")
    entries = [
        MarkEntry("E", "A", EXEMPT),
        MarkEntry("E", "B", EXEMPT),
        present("P", "A", "10"),
        present("P", "B", "10"),
    ]
    results = generate_results(rules, entries)
    assert [(r.student_number, r.rank) for r in results] == [("P", 1), ("E", None)]


def test_all_absent() -> None:
    rules = two_subjects("100", "50")
    result = only(rules, MarkEntry("S", "A", ABSENT), MarkEntry("S", "B", ABSENT))
    assert result.status == ResultStatus.COMPLETE
    assert (result.total, result.max_total, result.percentage) == (D(0), D(150), D("0.00"))
    assert (result.grade, result.gpa, result.passed) == ("F", D("0.00"), False)
    assert all(r.mark == 0 and r.passed is False for r in result.subjects)
    assert generate_results(rules, [MarkEntry("S", c, ABSENT) for c in "AB"])[0].rank == 1


def test_absent_with_zero_pass_mark_still_fails() -> None:
    result = only(one_subject(pass_mark="0"), MarkEntry("S", "X", ABSENT))
    assert result.subjects[0].passed is False
    assert result.passed is False


def test_present_zero_with_zero_pass_mark_passes() -> None:
    result = only(one_subject(pass_mark="0"), present("S", "X", "0"))
    assert result.subjects[0].passed is True
    assert result.passed is True


def test_mark_on_absent_or_exempt_entry_is_ignored() -> None:
    rules = two_subjects("100", "100")
    result = only(
        rules,
        MarkEntry("S", "A", ABSENT, D("50")),
        MarkEntry("S", "B", EXEMPT, D("50")),
    )
    assert result.subjects[0].mark == 0
    assert result.subjects[1].mark is None
    assert result.total == 0


@pytest.mark.parametrize(
    ("mark", "pass_mark", "pass_percent", "subject_passed", "passed"),
    [
        ("40", "40", "0", True, True),  # mark == pass_mark passes
        ("39.99", "40", "0", False, False),
        ("40", "40", "40", True, True),  # percentage == pass_percent passes
        ("40", "40", "40.01", True, False),  # subject passed, overall below pass_percent
        ("39.99", "30", "40", True, False),
        ("100", "100", "100", True, True),
        ("0", "0", "0", True, True),
    ],
)
def test_passed(
    mark: str, pass_mark: str, pass_percent: str, subject_passed: bool, passed: bool
) -> None:
    rules = one_subject("100", pass_mark, pass_percent)
    result = only(rules, present("S", "X", mark))
    assert result.subjects[0].passed is subject_passed
    assert result.passed is passed


def test_pass_percent_compares_the_rounded_percentage() -> None:
    # 159.99 / 200 = 79.995% -> 80.00 >= 80
    assert only(one_subject("200", "0", "80"), present("S", "X", "159.99")).passed is True
    # 399.97 / 500 = 79.994% -> 79.99 < 80
    assert only(one_subject("500", "0", "80"), present("S", "X", "399.97")).passed is False


def test_one_failed_subject_fails_the_result() -> None:
    rules = ExamRules(
        (Subject("A", D(100), D(50)), Subject("B", D(100), D(50))),
        SCALE,
        pass_percent=D(0),
    )
    result = only(rules, present("S", "A", "100"), present("S", "B", "49"))
    assert result.percentage == D("74.50")
    assert result.passed is False


def test_exempt_subject_does_not_block_pass_nor_count() -> None:
    rules = ExamRules(
        (Subject("A", D(100), D(50)), Subject("B", D(100), D(99))),
        SCALE,
        pass_percent=D(50),
    )
    result = only(rules, present("S", "A", "50"), MarkEntry("S", "B", EXEMPT))
    assert (result.total, result.max_total, result.percentage) == (D(50), D(100), D("50.00"))
    assert result.gpa == D("2.00")
    assert result.passed is True


# ---------------------------------------------------------------------- incomplete


def test_entry_for_only_one_subject_is_incomplete() -> None:
    rules = two_subjects("100", "100")
    result = only(rules, present("S", "B", "95"))
    assert result.status == ResultStatus.INCOMPLETE
    assert result.total is None and result.max_total is None and result.percentage is None
    assert result.grade is None and result.gpa is None and result.passed is None
    assert result.rank is None
    assert [(r.code, r.mark, r.percentage, r.grade) for r in result.subjects] == [
        ("B", D("95"), D("95.00"), "A")
    ]


def test_incomplete_with_only_exempt_entry() -> None:
    result = only(two_subjects("100", "100"), MarkEntry("S", "A", EXEMPT))
    assert result.status == ResultStatus.INCOMPLETE
    assert len(result.subjects) == 1 and result.subjects[0].percentage is None


def test_incomplete_results_take_no_rank_position() -> None:
    rules = two_subjects("100", "100")
    entries = [
        present("BEST", "A", "100"),  # incomplete, would be first
        present("S1", "A", "50"),
        present("S1", "B", "50"),
        present("S2", "A", "40"),
        present("S2", "B", "40"),
    ]
    results = generate_results(rules, entries)
    assert [(r.student_number, r.status, r.rank) for r in results] == [
        ("S1", ResultStatus.COMPLETE, 1),
        ("S2", ResultStatus.COMPLETE, 2),
        ("BEST", ResultStatus.INCOMPLETE, None),
    ]


def test_subject_rows_follow_exam_order_not_entry_order() -> None:
    rules = ExamRules(tuple(Subject(c, D(10), D(0)) for c in "QWERTY"), SCALE)
    entries = [present("S", c, "5") for c in "YTREWQ"]
    assert [r.code for r in only(rules, *entries).subjects] == list("QWERTY")
    incomplete = only(rules, *entries[:3])
    assert [r.code for r in incomplete.subjects] == list("RTY")


# --------------------------------------------------------------------------- ranks


def ranked(method: RankMethod, *marks: str) -> list[tuple[str, int | None]]:
    rules = one_subject(method=method)
    entries = [present(f"S{i}", "X", m) for i, m in enumerate(marks)]
    return [(r.student_number, r.rank) for r in generate_results(rules, entries)]


@pytest.mark.parametrize(
    ("method", "marks", "expected"),
    [
        (COMPETITION, ("90", "90", "80"), [("S0", 1), ("S1", 1), ("S2", 3)]),
        (DENSE, ("90", "90", "80"), [("S0", 1), ("S1", 1), ("S2", 2)]),
        (
            COMPETITION,
            ("70", "90", "80", "90", "80"),
            [("S1", 1), ("S3", 1), ("S2", 3), ("S4", 3), ("S0", 5)],
        ),
        (
            DENSE,
            ("70", "90", "80", "90", "80"),
            [("S1", 1), ("S3", 1), ("S2", 2), ("S4", 2), ("S0", 3)],
        ),
        (COMPETITION, ("50", "50", "50"), [("S0", 1), ("S1", 1), ("S2", 1)]),
        (DENSE, ("50", "50", "50"), [("S0", 1), ("S1", 1), ("S2", 1)]),
        (COMPETITION, ("10", "20", "30"), [("S2", 1), ("S1", 2), ("S0", 3)]),
        (DENSE, ("0",), [("S0", 1)]),
    ],
)
def test_ties(method: RankMethod, marks: tuple[str, ...], expected: list[tuple[str, int]]) -> None:
    assert ranked(method, *marks) == expected


def test_ties_are_decided_on_the_rounded_percentage() -> None:
    rules = one_subject("500", "0")
    # 399.97 -> 79.994 -> 79.99 ; 399.95 -> 79.99 ; 399.98 -> 79.996 -> 80.00
    entries = [
        present("B", "X", "399.95"),
        present("A", "X", "399.97"),
        present("C", "X", "399.98"),
    ]
    results = generate_results(rules, entries)
    assert [(r.student_number, r.percentage, r.rank) for r in results] == [
        ("C", D("80.00"), 1),
        ("A", D("79.99"), 2),
        ("B", D("79.99"), 2),
    ]


def test_assign_ranks_keeps_input_order_and_resets_ineligible_ranks() -> None:
    rules = one_subject()
    low = only(rules, present("L", "X", "10"))
    high = only(rules, present("H", "X", "90"))
    stale_incomplete = replace(only(two_subjects("1", "1"), present("I", "A", "1")), rank=7)
    out = assign_ranks([low, stale_incomplete, high], DENSE)
    assert [(r.student_number, r.rank) for r in out] == [("L", 2), ("I", None), ("H", 1)]
    assert assign_ranks([], COMPETITION) == []


def test_rank_method_given_as_string() -> None:
    rules = one_subject()
    results = [only(rules, present(s, "X", m)) for s, m in [("a", "5"), ("b", "5"), ("c", "1")]]
    assert [r.rank for r in assign_ranks(results, cast(RankMethod, "dense"))] == [1, 1, 2]


# ------------------------------------------------------------ candidates and input


def test_no_entries_no_candidates() -> None:
    assert generate_results(one_subject(), []) == []


def test_entries_for_unknown_subjects_are_ignored() -> None:
    rules = one_subject()
    entries = [present("S", "X", "50"), present("S", "GONE", "10"), present("T", "GONE", "1")]
    results = generate_results(rules, entries)
    assert [r.student_number for r in results] == ["S"]
    assert [r.code for r in results[0].subjects] == ["X"]
    assert results[0].total == 50


def test_compute_student_result_with_only_unknown_subjects() -> None:
    result = only(one_subject(), present("S", "GONE", "1"))
    assert result.status == ResultStatus.INCOMPLETE and result.subjects == ()


def test_duplicate_entry_raises() -> None:
    entries = [present("S", "X", "1"), MarkEntry("S", "X", ABSENT)]
    with pytest.raises(ValueError, match="duplicate"):
        generate_results(one_subject(), entries)
    with pytest.raises(ValueError, match="duplicate"):
        compute_student_result(one_subject(), entries)


def test_compute_student_result_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="no entries"):
        compute_student_result(one_subject(), [])
    with pytest.raises(ValueError, match="more than one student"):
        compute_student_result(
            two_subjects("1", "1"), [present("S", "A", "1"), present("T", "B", "1")]
        )
    with pytest.raises(ValueError, match="present mark without a value"):
        compute_student_result(one_subject(), [MarkEntry("S", "X", PRESENT)])


def test_status_strings_are_accepted() -> None:
    entry = MarkEntry("S", "X", cast(MarkStatus, "absent"))
    assert entry.status is ABSENT
    with pytest.raises(ValueError):
        MarkEntry("S", "X", cast(MarkStatus, "sick"))


def test_rules_accept_lists_and_default_to_competition_and_zero_pass_percent() -> None:
    as_lists: Any = ([Subject("X", D(1), D(0))], list(SCALE))
    rules = ExamRules(*as_lists)
    assert isinstance(rules.subjects, tuple) and isinstance(rules.grading_scale, tuple)
    assert rules.rank_method is COMPETITION and rules.pass_percent == 0
    assert Subject("X", D(1), D(0)).credits == 1


# ------------------------------------------------------------- definition problems

SUBJ = Subject("MATH", D("100"), D("40"), D("2"))
OK_SCALE = SCALE


def problems(
    subjects: tuple[Subject, ...] = (SUBJ,),
    scale: tuple[GradeBand, ...] = OK_SCALE,
    pass_percent: str = "40",
) -> list[tuple[str, str]]:
    found = validate_exam_definition(subjects, scale, D(pass_percent))
    for problem in found:
        assert isinstance(problem, DefinitionProblem)
        assert problem.message
    return [(p.field, p.code) for p in found]


def test_valid_definition_has_no_problems() -> None:
    assert problems() == []
    assert validate_exam_definition([SUBJ], [GradeBand("P", D(0), D(0))]) == []


@pytest.mark.parametrize(
    ("subjects", "expected"),
    [
        ((), [("subjects", "NO_SUBJECTS")]),
        ((replace(SUBJ, code=""),), [("subjects[0].code", "SUBJECT_CODE_EMPTY")]),
        ((replace(SUBJ, code="  "),), [("subjects[0].code", "SUBJECT_CODE_EMPTY")]),
        (
            (SUBJ, replace(SUBJ, max_mark=D(50)), SUBJ),
            [
                ("subjects[1].code", "DUPLICATE_SUBJECT_CODE"),
                ("subjects[2].code", "DUPLICATE_SUBJECT_CODE"),
            ],
        ),
        (
            (replace(SUBJ, max_mark=D(0), pass_mark=D(0)),),
            [("subjects[0].max_mark", "MAX_MARK_NOT_POSITIVE")],
        ),
        (
            (replace(SUBJ, max_mark=D(-5), pass_mark=D(0)),),
            [
                ("subjects[0].max_mark", "MAX_MARK_NOT_POSITIVE"),
                ("subjects[0].pass_mark", "PASS_MARK_OUT_OF_RANGE"),
            ],
        ),
        ((replace(SUBJ, max_mark=D("100.001")),), [("subjects[0].max_mark", "TOO_MANY_DECIMALS")]),
        ((replace(SUBJ, max_mark=D("100.500")),), []),  # 100.5: trailing zeros do not count
        ((replace(SUBJ, max_mark=D("0.01"), pass_mark=D("0.01")),), []),
        (
            (replace(SUBJ, pass_mark=D("-0.01")),),
            [("subjects[0].pass_mark", "PASS_MARK_OUT_OF_RANGE")],
        ),
        (
            (replace(SUBJ, pass_mark=D("100.01")),),
            [("subjects[0].pass_mark", "PASS_MARK_OUT_OF_RANGE")],
        ),
        ((replace(SUBJ, pass_mark=D("100")),), []),
        ((replace(SUBJ, pass_mark=D("0")),), []),
        ((replace(SUBJ, credits=D(0)),), [("subjects[0].credits", "CREDITS_NOT_POSITIVE")]),
        ((replace(SUBJ, credits=D(-1)),), [("subjects[0].credits", "CREDITS_NOT_POSITIVE")]),
        ((replace(SUBJ, credits=D("0.5")),), []),
        ((replace(SUBJ, max_mark=D("NaN")),), [("subjects[0].max_mark", "NOT_A_NUMBER")]),
        ((replace(SUBJ, pass_mark=D("Infinity")),), [("subjects[0].pass_mark", "NOT_A_NUMBER")]),
        ((replace(SUBJ, credits=D("-Infinity")),), [("subjects[0].credits", "NOT_A_NUMBER")]),
        (
            (SUBJ, replace(SUBJ, code="PHYS", max_mark=D("0.001"), pass_mark=D(1), credits=D(0))),
            [
                ("subjects[1].max_mark", "TOO_MANY_DECIMALS"),
                ("subjects[1].pass_mark", "PASS_MARK_OUT_OF_RANGE"),
                ("subjects[1].credits", "CREDITS_NOT_POSITIVE"),
            ],
        ),
    ],
)
def test_subject_problems(subjects: tuple[Subject, ...], expected: list[tuple[str, str]]) -> None:
    assert problems(subjects=subjects) == expected


def band(grade: str, min_percent: str, points: str = "1") -> GradeBand:
    return GradeBand(grade, D(min_percent), D(points))


@pytest.mark.parametrize(
    ("scale", "expected"),
    [
        ((), [("grading_scale", "SCALE_MISSING_ZERO_BAND")]),
        ((band("A", "50"),), [("grading_scale", "SCALE_MISSING_ZERO_BAND")]),
        ((band("A", "0.00"),), []),
        (
            (band("A", "50"), band("B", "0"), band("C", "50")),
            [("grading_scale[2].min_percent", "DUPLICATE_BAND")],
        ),
        (
            (band("A", "50"), band("B", "0"), band("A", "70")),
            [("grading_scale[2].grade", "DUPLICATE_BAND")],
        ),
        (
            (band("A", "50.0"), band("F", "0"), band("B", "50")),
            [("grading_scale[2].min_percent", "DUPLICATE_BAND")],
        ),
        ((band("", "0"),), [("grading_scale[0].grade", "GRADE_EMPTY")]),
        (
            (band("A", "100.01"), band("F", "0")),
            [("grading_scale[0].min_percent", "MIN_PERCENT_OUT_OF_RANGE")],
        ),
        (
            (band("A", "-1"), band("F", "0")),
            [("grading_scale[0].min_percent", "MIN_PERCENT_OUT_OF_RANGE")],
        ),
        ((band("A", "100"), band("F", "0")), []),
        ((band("F", "0", "-0.5"),), [("grading_scale[0].points", "POINTS_NEGATIVE")]),
        ((band("F", "0", "0"),), []),
        (
            (band("A", "NaN"), band("F", "0")),
            [("grading_scale[0].min_percent", "NOT_A_NUMBER")],
        ),
        ((band("F", "0", "Infinity"),), [("grading_scale[0].points", "NOT_A_NUMBER")]),
    ],
)
def test_scale_problems(scale: tuple[GradeBand, ...], expected: list[tuple[str, str]]) -> None:
    assert problems(scale=scale) == expected


@pytest.mark.parametrize(
    ("pass_percent", "expected"),
    [
        ("0", []),
        ("100", []),
        ("33.333", []),
        ("-0.01", [("pass_percent", "PASS_PERCENT_OUT_OF_RANGE")]),
        ("100.01", [("pass_percent", "PASS_PERCENT_OUT_OF_RANGE")]),
        ("NaN", [("pass_percent", "NOT_A_NUMBER")]),
    ],
)
def test_pass_percent_problems(pass_percent: str, expected: list[tuple[str, str]]) -> None:
    assert problems(pass_percent=pass_percent) == expected


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        subjects=(SUBJ, SUBJ, replace(SUBJ, code="B", max_mark=D(0))),
        scale=(band("A", "50", "-1"), band("A", "50")),
        pass_percent="101",
    )
    assert found == [
        ("subjects[1].code", "DUPLICATE_SUBJECT_CODE"),
        ("subjects[2].max_mark", "MAX_MARK_NOT_POSITIVE"),
        ("subjects[2].pass_mark", "PASS_MARK_OUT_OF_RANGE"),
        ("grading_scale[0].points", "POINTS_NEGATIVE"),
        ("grading_scale[1].min_percent", "DUPLICATE_BAND"),
        ("grading_scale[1].grade", "DUPLICATE_BAND"),
        ("grading_scale", "SCALE_MISSING_ZERO_BAND"),
        ("pass_percent", "PASS_PERCENT_OUT_OF_RANGE"),
    ]


def test_every_definition_code_is_exercised() -> None:
    definition_codes = {
        ProblemCode.NO_SUBJECTS,
        ProblemCode.SUBJECT_CODE_EMPTY,
        ProblemCode.DUPLICATE_SUBJECT_CODE,
        ProblemCode.MAX_MARK_NOT_POSITIVE,
        ProblemCode.PASS_MARK_OUT_OF_RANGE,
        ProblemCode.CREDITS_NOT_POSITIVE,
        ProblemCode.SCALE_MISSING_ZERO_BAND,
        ProblemCode.GRADE_EMPTY,
        ProblemCode.DUPLICATE_BAND,
        ProblemCode.MIN_PERCENT_OUT_OF_RANGE,
        ProblemCode.POINTS_NEGATIVE,
        ProblemCode.PASS_PERCENT_OUT_OF_RANGE,
        ProblemCode.TOO_MANY_DECIMALS,
        ProblemCode.NOT_A_NUMBER,
    }
    mark_codes = {
        ProblemCode.MARK_REQUIRED,
        ProblemCode.MARK_NOT_ALLOWED,
        ProblemCode.MARK_OUT_OF_RANGE,
    }
    assert definition_codes | mark_codes == set(ProblemCode)
    assert all(code == code.value and code.isupper() for code in ProblemCode)


# -------------------------------------------------------------------- mark problems

MARKED = Subject("X", D("50"), D("20"))


@pytest.mark.parametrize(
    ("status", "mark", "expected"),
    [
        (PRESENT, "0", []),
        (PRESENT, "50", []),
        (PRESENT, "50.00", []),
        (PRESENT, "12.34", []),
        (PRESENT, "12.340", []),
        (PRESENT, None, ["MARK_REQUIRED"]),
        (PRESENT, "-0.01", ["MARK_OUT_OF_RANGE"]),
        (PRESENT, "50.01", ["MARK_OUT_OF_RANGE"]),
        (PRESENT, "12.345", ["TOO_MANY_DECIMALS"]),
        (PRESENT, "50.001", ["MARK_OUT_OF_RANGE", "TOO_MANY_DECIMALS"]),
        (PRESENT, "NaN", ["NOT_A_NUMBER"]),
        (PRESENT, "Infinity", ["NOT_A_NUMBER"]),
        (ABSENT, None, []),
        (EXEMPT, None, []),
        (ABSENT, "0", ["MARK_NOT_ALLOWED"]),
        (EXEMPT, "10", ["MARK_NOT_ALLOWED"]),
        ("present", "1", []),
        ("absent", "1", ["MARK_NOT_ALLOWED"]),
    ],
)
def test_validate_mark(status: MarkStatus, mark: str | None, expected: list[str]) -> None:
    assert validate_mark(MARKED, status, None if mark is None else D(mark)) == expected


def test_validate_mark_unknown_status() -> None:
    with pytest.raises(ValueError):
        validate_mark(MARKED, "late", D(1))


@pytest.mark.parametrize(
    ("value", "places"),
    [
        ("1", 0),
        ("1.5", 1),
        ("1.500", 1),
        ("1.25", 2),
        ("1.251", 3),
        ("0.000", 0),
        ("2E+3", 0),
        ("1E-30", 30),
        ("-3.10", 1),
        ("123456789012345678901234567890.12", 2),
    ],
)
def test_decimal_places(value: str, places: int) -> None:
    assert decimal_places(D(value)) == places
