"""Checking an exam definition: the domain's rules plus what storage can hold.

The domain (:func:`results_service.domain.validate_exam_definition`) states
RESULTS.md's rules. The columns hold two decimals and bounded magnitudes, so
a value with more decimals would be silently rounded by Postgres and a huge
one would fail the insert: both are refused here with a detail instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from service_kit.errors import DetailCode, ErrorDetail

from results_service.domain import (
    GradeBand,
    Subject,
    has_at_most_two_decimals,
    validate_exam_definition,
)
from results_service.store.exams import GradeBandRecord, SubjectRecord

MAX_MARK_VALUE = Decimal("99999.99")
"""NUMERIC(7, 2): the largest max_mark, pass_mark or credits."""
MAX_POINTS_VALUE = Decimal("9999.99")
"""NUMERIC(6, 2): the largest points of a band."""


@dataclass(frozen=True, slots=True)
class ExamDefinition:
    """What the results of an exam depend on (the rest of an exam is labels)."""

    subjects: tuple[SubjectRecord, ...]
    grading_scale: tuple[GradeBandRecord, ...]
    pass_percent: Decimal
    rank_method: str

    def affects_results_differently_from(self, other: ExamDefinition) -> bool:
        """True when results computed under ``other`` may be wrong under this one.

        Names and examiner assignments do not change a result; subject order
        does (a result lists subjects in exam order).
        """

        def key(d: ExamDefinition) -> object:
            return (
                [(s.code, s.max_mark, s.pass_mark, s.credits) for s in d.subjects],
                sorted((b.min_percent, b.grade, b.points) for b in d.grading_scale),
                d.pass_percent,
                d.rank_method,
            )

        return key(self) != key(other)


def _two_decimals(field: str, value: Decimal, out: list[ErrorDetail]) -> None:
    if value.is_finite() and not has_at_most_two_decimals(value):
        out.append(
            ErrorDetail(field, DetailCode.TOO_MANY_DECIMALS, f"{value} has more than two decimals")
        )


def _at_most(field: str, value: Decimal, limit: Decimal, out: list[ErrorDetail]) -> None:
    if value.is_finite() and value > limit:
        out.append(
            ErrorDetail(field, DetailCode.VALUE_TOO_LARGE, f"must be at most {limit}, got {value}")
        )


def _storage_problems(definition: ExamDefinition) -> list[ErrorDetail]:
    out: list[ErrorDetail] = []
    for i, s in enumerate(definition.subjects):
        # max_mark's decimals are a domain rule, reported by the domain.
        _at_most(f"subjects[{i}].max_mark", s.max_mark, MAX_MARK_VALUE, out)
        _two_decimals(f"subjects[{i}].pass_mark", s.pass_mark, out)
        _two_decimals(f"subjects[{i}].credits", s.credits, out)
        _at_most(f"subjects[{i}].credits", s.credits, MAX_MARK_VALUE, out)
    for i, b in enumerate(definition.grading_scale):
        _two_decimals(f"grading_scale[{i}].min_percent", b.min_percent, out)
        _two_decimals(f"grading_scale[{i}].points", b.points, out)
        _at_most(f"grading_scale[{i}].points", b.points, MAX_POINTS_VALUE, out)
    _two_decimals("pass_percent", definition.pass_percent, out)
    return out


def definition_problems(definition: ExamDefinition) -> list[ErrorDetail]:
    """Every problem of the definition, one detail each; empty when it can be stored."""
    domain = validate_exam_definition(
        [Subject(s.code, s.max_mark, s.pass_mark, s.credits) for s in definition.subjects],
        [GradeBand(b.grade, b.min_percent, b.points) for b in definition.grading_scale],
        definition.pass_percent,
    )
    # The domain's codes are catalogue codes (a test holds them to it).
    details = [ErrorDetail(p.field, DetailCode(p.code), p.message) for p in domain]
    return details + _storage_problems(definition)


def problems_with_existing_marks(
    subjects: Sequence[SubjectRecord], highest: dict[str, Decimal | None]
) -> list[ErrorDetail]:
    """A PATCH may not drop a subject that has marks, nor put its max_mark under one."""
    out: list[ErrorDetail] = []
    by_code = {s.code: (i, s) for i, s in enumerate(subjects)}
    for code in sorted(highest):
        if code not in by_code:
            out.append(
                ErrorDetail(
                    "subjects",
                    DetailCode.SUBJECT_HAS_MARKS,
                    f"subject {code!r} has marks and cannot be removed",
                )
            )
            continue
        i, subject = by_code[code]
        top = highest[code]
        if top is not None and subject.max_mark.is_finite() and top > subject.max_mark:
            out.append(
                ErrorDetail(
                    f"subjects[{i}].max_mark",
                    DetailCode.MARKS_ABOVE_MAX_MARK,
                    f"a mark of {top} is already entered for {code!r}",
                )
            )
    return out
