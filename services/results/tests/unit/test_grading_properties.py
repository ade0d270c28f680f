"""Property-based tests (hypothesis) of the results arithmetic."""

from __future__ import annotations

from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from itertools import pairwise
from random import Random

from hypothesis import given, settings
from hypothesis import strategies as st
from results_service.domain import (
    ExamRules,
    GradeBand,
    MarkEntry,
    MarkStatus,
    RankMethod,
    ResultStatus,
    StudentResult,
    Subject,
    assign_ranks,
    band_for,
    compute_student_result,
    decimal_places,
    generate_results,
    result_sort_key,
    validate_exam_definition,
    validate_mark,
)
from results_service.domain.decimal_math import divide_round_2, round_half_up_2

CENT = Decimal("0.01")


def cents(value: int) -> Decimal:
    return Decimal(f"{value}E-2")


@st.composite
def exam_rules(draw: st.DrawFn) -> ExamRules:
    subjects = []
    for index in range(draw(st.integers(1, 5))):
        max_cents = draw(st.one_of(st.sampled_from([100, 5000, 10000]), st.integers(1, 100_000)))
        pass_cents = draw(st.integers(0, max_cents))
        credits = draw(st.sampled_from(["1", "1", "2", "3", "0.5", "1.25"]))
        subjects.append(
            Subject(f"SUB{index}", cents(max_cents), cents(pass_cents), Decimal(credits))
        )
    minimums = draw(st.lists(st.integers(1, 10_000), unique=True, max_size=6))
    bands = [
        GradeBand(f"G{i}", cents(m), cents(draw(st.integers(0, 500))))
        for i, m in enumerate([0, *minimums])
    ]
    return ExamRules(
        tuple(subjects),
        tuple(draw(st.permutations(bands))),
        pass_percent=cents(draw(st.integers(0, 10_000))),
        rank_method=draw(st.sampled_from(list(RankMethod))),
    )


@st.composite
def marks_for(draw: st.DrawFn, rules: ExamRules) -> list[MarkEntry]:
    entries = []
    for student in range(draw(st.integers(0, 8))):
        number = f"N{student:03d}"
        for subject in rules.subjects:
            kind = draw(st.sampled_from(["present"] * 6 + ["absent", "exempt", "none"]))
            if kind == "none":
                continue
            if kind != "present":
                entries.append(MarkEntry(number, subject.code, MarkStatus(kind)))
                continue
            max_cents = int(subject.max_mark * 100)
            mark = draw(
                st.one_of(
                    st.sampled_from([0, max_cents, max_cents // 2]),
                    st.integers(0, max_cents),
                )
            )
            entries.append(MarkEntry(number, subject.code, MarkStatus.PRESENT, cents(mark)))
    return entries


@st.composite
def exams(draw: st.DrawFn) -> tuple[ExamRules, list[MarkEntry]]:
    rules = draw(exam_rules())
    return rules, draw(marks_for(rules))


def reference_round(numerator: Decimal, denominator: Decimal) -> Decimal:
    """Independent oracle: plenty of precision, then Decimal's own ROUND_HALF_UP."""
    with localcontext() as ctx:
        ctx.prec = 60
        return (numerator / denominator).quantize(CENT, rounding=ROUND_HALF_UP)


def all_none(*values: object) -> bool:
    return all(value is None for value in values)


def entries_by_student(entries: list[MarkEntry]) -> dict[str, dict[str, MarkEntry]]:
    out: dict[str, dict[str, MarkEntry]] = {}
    for entry in entries:
        out.setdefault(entry.student_number, {})[entry.subject_code] = entry
    return out


@given(exams())
@settings(max_examples=300)
def test_results_match_an_independent_oracle(exam: tuple[ExamRules, list[MarkEntry]]) -> None:
    rules, entries = exam
    grouped = entries_by_student(entries)
    results = generate_results(rules, entries)
    assert {r.student_number for r in results} == set(grouped)
    for result in results:
        mine = grouped[result.student_number]
        entered = [s for s in rules.subjects if s.code in mine]
        if len(entered) < len(rules.subjects):
            assert result.status == ResultStatus.INCOMPLETE
            assert all_none(result.total, result.max_total, result.percentage, result.grade)
            assert all_none(result.gpa, result.passed, result.rank)
        else:
            assert result.status == ResultStatus.COMPLETE
        assert [row.code for row in result.subjects] == [s.code for s in entered]

        counted_marks: list[Decimal] = []
        counted: list[Subject] = []
        points: list[Decimal] = []
        for subject, row in zip(entered, result.subjects, strict=True):
            entry = mine[subject.code]
            assert row.status == entry.status
            if entry.status == MarkStatus.EXEMPT:
                assert all_none(row.mark, row.percentage, row.grade, row.points, row.passed)
                continue
            mark = entry.mark if entry.status == MarkStatus.PRESENT else Decimal(0)
            assert mark is not None
            assert row.mark == mark
            assert row.percentage == reference_round(100 * mark, subject.max_mark)
            assert row.percentage is not None and 0 <= row.percentage <= 100
            assert row.percentage.as_tuple().exponent == -2
            band = band_for(row.percentage, rules.grading_scale)
            assert (row.grade, row.points) == (band.grade, band.points)
            assert row.passed is (entry.status == MarkStatus.PRESENT and mark >= subject.pass_mark)
            counted_marks.append(mark)
            counted.append(subject)
            points.append(band.points)

        if result.status == ResultStatus.INCOMPLETE:
            continue
        assert result.total == sum(counted_marks, Decimal(0))
        assert result.max_total == sum((s.max_mark for s in counted), Decimal(0))
        if not counted:
            assert result.total == result.max_total == 0
            assert all_none(result.percentage, result.grade, result.gpa, result.passed)
            assert result.rank is None
            continue
        assert result.total is not None and result.max_total is not None
        assert result.total <= result.max_total
        percentage = reference_round(100 * result.total, result.max_total)
        assert result.percentage == percentage
        assert 0 <= percentage <= 100
        assert result.grade == band_for(percentage, rules.grading_scale).grade
        weighted = sum((p * s.credits for p, s in zip(points, counted, strict=True)), Decimal(0))
        credits = sum((s.credits for s in counted), Decimal(0))
        assert result.gpa == reference_round(weighted, credits)
        assert result.gpa is not None and result.gpa.as_tuple().exponent == -2
        assert min(points) <= result.gpa <= max(points)
        scale_points = [b.points for b in rules.grading_scale]
        assert min(scale_points) <= result.gpa <= max(scale_points)
        subjects_passed = all(row.passed for row in result.subjects if row.status != "exempt")
        assert result.passed is (subjects_passed and percentage >= rules.pass_percent)


def strictly_better(result: StudentResult, results: list[StudentResult]) -> list[Decimal]:
    assert result.percentage is not None
    return [
        r.percentage
        for r in results
        if r.rank is not None and r.percentage is not None and r.percentage > result.percentage
    ]


@given(exams())
@settings(max_examples=300)
def test_ranks_are_consistent_with_percentages(exam: tuple[ExamRules, list[MarkEntry]]) -> None:
    rules, entries = exam
    results = generate_results(rules, entries)
    assert results == sorted(results, key=result_sort_key)
    for result in results:
        rankable = result.status == ResultStatus.COMPLETE and result.percentage is not None
        assert (result.rank is not None) is rankable
        if not rankable:
            continue
        better = strictly_better(result, results)
        if rules.rank_method == RankMethod.COMPETITION:
            assert result.rank == 1 + len(better)
        else:
            assert result.rank == 1 + len(set(better))
    ranked = [r for r in results if r.rank is not None]
    percentages = [r.percentage for r in ranked if r.percentage is not None]
    assert len(percentages) == len(ranked)
    assert percentages == sorted(percentages, reverse=True)
    for earlier, later in pairwise(ranked):
        assert earlier.rank is not None and later.rank is not None
        assert (earlier.rank == later.rank) is (earlier.percentage == later.percentage)
    if rules.rank_method == RankMethod.DENSE and ranked:
        dense_ranks = {r.rank for r in ranked if r.rank is not None}
        assert sorted(dense_ranks) == list(range(1, len(set(percentages)) + 1))


@given(exams(), st.randoms(use_true_random=False))
def test_entry_order_does_not_matter(
    exam: tuple[ExamRules, list[MarkEntry]], random: Random
) -> None:
    rules, entries = exam
    shuffled = list(entries)
    random.shuffle(shuffled)
    assert generate_results(rules, shuffled) == generate_results(rules, entries)


@given(exams())
def test_rank_method_only_changes_ranks(exam: tuple[ExamRules, list[MarkEntry]]) -> None:
    rules, entries = exam
    competition = generate_results(replace(rules, rank_method=RankMethod.COMPETITION), entries)
    dense = generate_results(replace(rules, rank_method=RankMethod.DENSE), entries)
    assert [replace(r, rank=None) for r in competition] == [replace(r, rank=None) for r in dense]
    for c, d in zip(competition, dense, strict=True):
        assert (c.rank is None) is (d.rank is None)
        assert c.rank is None or d.rank is None or d.rank <= c.rank


@given(exams())
def test_single_student_computation_matches_generation(
    exam: tuple[ExamRules, list[MarkEntry]],
) -> None:
    rules, entries = exam
    results = generate_results(rules, entries)
    for result in results:
        own = [e for e in entries if e.student_number == result.student_number]
        assert compute_student_result(rules, own) == replace(result, rank=None)
    recomputed = assign_ranks([replace(r, rank=None) for r in results], rules.rank_method)
    assert recomputed == results


@given(exams())
def test_incomplete_candidates_do_not_move_anyone(
    exam: tuple[ExamRules, list[MarkEntry]],
) -> None:
    rules, entries = exam
    before = {r.student_number: r for r in generate_results(rules, entries)}
    extra = MarkEntry("ZZZ-NEW", rules.subjects[0].code, MarkStatus.PRESENT, Decimal(0))
    after = generate_results(rules, [*entries, extra])
    newcomer = next(r for r in after if r.student_number == "ZZZ-NEW")
    if len(rules.subjects) > 1:
        assert newcomer.status == ResultStatus.INCOMPLETE
        assert {r.student_number: r for r in after if r is not newcomer} == before


@given(exam_rules())
def test_generated_definitions_are_valid(rules: ExamRules) -> None:
    assert validate_exam_definition(rules.subjects, rules.grading_scale, rules.pass_percent) == []


@given(st.integers(1, 10**9), st.data())
def test_marks_in_range_with_two_decimals_are_valid(max_cents: int, data: st.DataObject) -> None:
    subject = Subject("X", cents(max_cents), Decimal(0))
    mark = cents(data.draw(st.integers(0, max_cents)))
    assert validate_mark(subject, MarkStatus.PRESENT, mark) == []
    above = cents(data.draw(st.integers(max_cents + 1, max_cents + 10**6)))
    assert validate_mark(subject, MarkStatus.PRESENT, above) == ["MARK_OUT_OF_RANGE"]
    thousandths = data.draw(st.integers(0, max_cents * 10).filter(lambda t: t % 10 != 0))
    assert validate_mark(subject, MarkStatus.PRESENT, Decimal(f"{thousandths}E-3")) == [
        "TOO_MANY_DECIMALS"
    ]


@given(st.integers(-(10**30), 10**30), st.integers(1, 10**30))
def test_exact_rounding_matches_decimal_half_up(numerator: int, denominator: int) -> None:
    expected = reference_round(Decimal(numerator), Decimal(denominator))
    assert round_half_up_2(Fraction(numerator, denominator)) == expected
    assert divide_round_2(Decimal(numerator), Decimal(denominator)) == expected


@given(st.integers(-(10**12), 10**12), st.integers(0, 8))
def test_decimal_places(coefficient: int, exponent: int) -> None:
    value = Decimal(coefficient).scaleb(-exponent)
    places = decimal_places(value)
    assert value == value.quantize(Decimal(1).scaleb(-places))
    if places:
        coarser = Decimal(1).scaleb(-(places - 1))
        assert value != value.quantize(coarser, rounding=ROUND_HALF_UP)
