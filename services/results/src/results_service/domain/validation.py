"""Validation of an exam definition and of a single mark (RESULTS.md, API.md).

Both functions report every violation, never stop at the first, so a 422 can
list them all.  Non-finite numbers (NaN, Infinity) are reported as
``NOT_A_NUMBER`` and not checked further.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from .decimal_math import has_at_most_two_decimals
from .models import GradeBand, MarkStatus, Subject

__all__ = [
    "DefinitionProblem",
    "ProblemCode",
    "validate_exam_definition",
    "validate_mark",
]

_HUNDRED = Decimal(100)


class ProblemCode(StrEnum):
    """Codes of validation problems (a ``str``: compares equal to its value)."""

    # exam definition
    NO_SUBJECTS = "NO_SUBJECTS"
    SUBJECT_CODE_EMPTY = "SUBJECT_CODE_EMPTY"
    DUPLICATE_SUBJECT_CODE = "DUPLICATE_SUBJECT_CODE"
    MAX_MARK_NOT_POSITIVE = "MAX_MARK_NOT_POSITIVE"
    PASS_MARK_OUT_OF_RANGE = "PASS_MARK_OUT_OF_RANGE"
    CREDITS_NOT_POSITIVE = "CREDITS_NOT_POSITIVE"
    SCALE_MISSING_ZERO_BAND = "SCALE_MISSING_ZERO_BAND"
    GRADE_EMPTY = "GRADE_EMPTY"
    DUPLICATE_BAND = "DUPLICATE_BAND"
    MIN_PERCENT_OUT_OF_RANGE = "MIN_PERCENT_OUT_OF_RANGE"
    POINTS_NEGATIVE = "POINTS_NEGATIVE"
    PASS_PERCENT_OUT_OF_RANGE = "PASS_PERCENT_OUT_OF_RANGE"
    # marks
    MARK_REQUIRED = "MARK_REQUIRED"
    MARK_NOT_ALLOWED = "MARK_NOT_ALLOWED"
    MARK_OUT_OF_RANGE = "MARK_OUT_OF_RANGE"
    # both
    TOO_MANY_DECIMALS = "TOO_MANY_DECIMALS"
    NOT_A_NUMBER = "NOT_A_NUMBER"


@dataclass(frozen=True, slots=True)
class DefinitionProblem:
    """One violation: ``field`` is a path such as ``subjects[1].pass_mark``."""

    field: str
    code: ProblemCode
    message: str


def _not_a_number(field: str) -> DefinitionProblem:
    return DefinitionProblem(field, ProblemCode.NOT_A_NUMBER, f"{field} must be a finite number")


def _check_subject(index: int, subject: Subject, out: list[DefinitionProblem]) -> None:
    path = f"subjects[{index}]"
    if not subject.code.strip():
        out.append(
            DefinitionProblem(f"{path}.code", ProblemCode.SUBJECT_CODE_EMPTY, "code is required")
        )

    max_ok = subject.max_mark.is_finite()
    if not max_ok:
        out.append(_not_a_number(f"{path}.max_mark"))
    else:
        if subject.max_mark <= 0:
            out.append(
                DefinitionProblem(
                    f"{path}.max_mark",
                    ProblemCode.MAX_MARK_NOT_POSITIVE,
                    f"max_mark must be greater than 0, got {subject.max_mark}",
                )
            )
        if not has_at_most_two_decimals(subject.max_mark):
            out.append(
                DefinitionProblem(
                    f"{path}.max_mark",
                    ProblemCode.TOO_MANY_DECIMALS,
                    f"max_mark has more than two decimals: {subject.max_mark}",
                )
            )

    if not subject.pass_mark.is_finite():
        out.append(_not_a_number(f"{path}.pass_mark"))
    elif subject.pass_mark < 0 or (max_ok and subject.pass_mark > subject.max_mark):
        out.append(
            DefinitionProblem(
                f"{path}.pass_mark",
                ProblemCode.PASS_MARK_OUT_OF_RANGE,
                f"pass_mark must be between 0 and max_mark, got {subject.pass_mark}",
            )
        )

    if not subject.credits.is_finite():
        out.append(_not_a_number(f"{path}.credits"))
    elif subject.credits <= 0:
        out.append(
            DefinitionProblem(
                f"{path}.credits",
                ProblemCode.CREDITS_NOT_POSITIVE,
                f"credits must be greater than 0, got {subject.credits}",
            )
        )


def _check_subjects(subjects: Sequence[Subject], out: list[DefinitionProblem]) -> None:
    if not subjects:
        out.append(
            DefinitionProblem("subjects", ProblemCode.NO_SUBJECTS, "an exam needs a subject")
        )
        return
    first_index: dict[str, int] = {}
    for index, subject in enumerate(subjects):
        _check_subject(index, subject, out)
        if subject.code in first_index:
            out.append(
                DefinitionProblem(
                    f"subjects[{index}].code",
                    ProblemCode.DUPLICATE_SUBJECT_CODE,
                    f"subject code {subject.code!r} is already used by "
                    f"subjects[{first_index[subject.code]}]",
                )
            )
        else:
            first_index[subject.code] = index


def _check_band(index: int, band: GradeBand, out: list[DefinitionProblem]) -> None:
    path = f"grading_scale[{index}]"
    if not band.grade.strip():
        out.append(DefinitionProblem(f"{path}.grade", ProblemCode.GRADE_EMPTY, "grade is required"))
    if not band.min_percent.is_finite():
        out.append(_not_a_number(f"{path}.min_percent"))
    elif not 0 <= band.min_percent <= _HUNDRED:
        out.append(
            DefinitionProblem(
                f"{path}.min_percent",
                ProblemCode.MIN_PERCENT_OUT_OF_RANGE,
                f"min_percent must be between 0 and 100, got {band.min_percent}",
            )
        )
    if not band.points.is_finite():
        out.append(_not_a_number(f"{path}.points"))
    elif band.points < 0:
        out.append(
            DefinitionProblem(
                f"{path}.points",
                ProblemCode.POINTS_NEGATIVE,
                f"points must be 0 or more, got {band.points}",
            )
        )


def _check_scale(scale: Sequence[GradeBand], out: list[DefinitionProblem]) -> None:
    first_min: dict[Decimal, int] = {}
    first_grade: dict[str, int] = {}
    has_zero = False
    for index, band in enumerate(scale):
        _check_band(index, band, out)
        if band.min_percent.is_finite():
            has_zero = has_zero or band.min_percent == 0
            if band.min_percent in first_min:
                out.append(
                    DefinitionProblem(
                        f"grading_scale[{index}].min_percent",
                        ProblemCode.DUPLICATE_BAND,
                        f"min_percent {band.min_percent} is already used by "
                        f"grading_scale[{first_min[band.min_percent]}]",
                    )
                )
            else:
                first_min[band.min_percent] = index
        if band.grade in first_grade:
            out.append(
                DefinitionProblem(
                    f"grading_scale[{index}].grade",
                    ProblemCode.DUPLICATE_BAND,
                    f"grade {band.grade!r} is already used by "
                    f"grading_scale[{first_grade[band.grade]}]",
                )
            )
        else:
            first_grade[band.grade] = index
    if not has_zero:
        out.append(
            DefinitionProblem(
                "grading_scale",
                ProblemCode.SCALE_MISSING_ZERO_BAND,
                "the grading scale needs a band with min_percent 0",
            )
        )


def validate_exam_definition(
    subjects: Sequence[Subject],
    grading_scale: Sequence[GradeBand],
    pass_percent: Decimal = Decimal(0),
) -> list[DefinitionProblem]:
    """Every violation of RESULTS.md "Exam definition"; empty when valid.

    Problems come in a stable order: subjects (by index), then the scale (by
    index, then the missing-zero-band problem), then ``pass_percent``.
    Duplicates are reported on every occurrence after the first.
    """
    out: list[DefinitionProblem] = []
    _check_subjects(subjects, out)
    _check_scale(grading_scale, out)
    if not pass_percent.is_finite():
        out.append(_not_a_number("pass_percent"))
    elif not 0 <= pass_percent <= _HUNDRED:
        out.append(
            DefinitionProblem(
                "pass_percent",
                ProblemCode.PASS_PERCENT_OUT_OF_RANGE,
                f"pass_percent must be between 0 and 100, got {pass_percent}",
            )
        )
    return out


def validate_mark(
    subject: Subject, status: MarkStatus | str, mark: Decimal | None
) -> list[ProblemCode]:
    """Problems of one mark entry for *subject*; empty when valid.

    ``present`` needs a mark with 0 <= mark <= max_mark and at most two
    decimals; ``absent`` and ``exempt`` take no mark.  Raises ``ValueError``
    for an unknown *status*.
    """
    status = MarkStatus(status)
    if status != MarkStatus.PRESENT:
        return [] if mark is None else [ProblemCode.MARK_NOT_ALLOWED]
    if mark is None:
        return [ProblemCode.MARK_REQUIRED]
    if not mark.is_finite():
        return [ProblemCode.NOT_A_NUMBER]
    problems: list[ProblemCode] = []
    if not 0 <= mark <= subject.max_mark:
        problems.append(ProblemCode.MARK_OUT_OF_RANGE)
    if not has_at_most_two_decimals(mark):
        problems.append(ProblemCode.TOO_MANY_DECIMALS)
    return problems
