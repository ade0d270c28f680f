"""Value types of the results domain (pure, immutable, Decimal everywhere)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

ONE = Decimal(1)
ZERO_PERCENT = Decimal(0)


class RankMethod(StrEnum):
    """How tied percentages affect the ranks that follow them."""

    COMPETITION = "competition"
    """1, 1, 3: a tie uses up the ranks it covers (the default)."""
    DENSE = "dense"
    """1, 1, 2: the next distinct percentage gets the next rank."""


class MarkStatus(StrEnum):
    """Status of one (student, subject) mark entry."""

    PRESENT = "present"
    ABSENT = "absent"
    EXEMPT = "exempt"


class ResultStatus(StrEnum):
    """Whether every subject of the exam has an entry for the candidate."""

    COMPLETE = "complete"
    INCOMPLETE = "incomplete"


@dataclass(frozen=True, slots=True)
class Subject:
    """One subject of an exam (only the fields the arithmetic needs)."""

    code: str
    max_mark: Decimal
    pass_mark: Decimal
    credits: Decimal = ONE


@dataclass(frozen=True, slots=True)
class GradeBand:
    """A band of the grading scale: percentages >= ``min_percent`` get ``grade``."""

    grade: str
    min_percent: Decimal
    points: Decimal


@dataclass(frozen=True, slots=True)
class ExamRules:
    """Everything about an exam that the results depend on.

    ``subjects`` is in exam order; that order is the order of a complete
    result's subject rows.  Lists are accepted and stored as tuples.
    """

    subjects: tuple[Subject, ...]
    grading_scale: tuple[GradeBand, ...]
    pass_percent: Decimal = ZERO_PERCENT
    rank_method: RankMethod = RankMethod.COMPETITION

    def __post_init__(self) -> None:
        object.__setattr__(self, "subjects", tuple(self.subjects))
        object.__setattr__(self, "grading_scale", tuple(self.grading_scale))
        object.__setattr__(self, "rank_method", RankMethod(self.rank_method))


@dataclass(frozen=True, slots=True)
class MarkEntry:
    """The entry for one (student, subject): ``mark`` is set only when present."""

    student_number: str
    subject_code: str
    status: MarkStatus
    mark: Decimal | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", MarkStatus(self.status))


@dataclass(frozen=True, slots=True)
class SubjectResult:
    """One subject row of a result.

    Counted subjects (present or absent) carry ``mark`` (0.00 when absent),
    the rounded ``percentage``, ``grade`` and ``points`` of its band, and
    ``passed``.  Exempt subjects have all five set to ``None``.
    """

    code: str
    status: MarkStatus
    mark: Decimal | None
    percentage: Decimal | None
    grade: str | None
    points: Decimal | None
    passed: bool | None


@dataclass(frozen=True, slots=True)
class StudentResult:
    """One candidate's result in an exam.

    * ``incomplete``: ``total`` .. ``rank`` are ``None``; ``subjects`` lists
      only the subjects that have an entry, in exam order.
    * ``complete``: ``subjects`` lists every subject in exam order.  When
      every subject is exempt, ``total`` and ``max_total`` are ``0.00`` (sums
      over no counted subject) while ``percentage``, ``grade``, ``gpa``,
      ``passed`` and ``rank`` are ``None``.
    """

    student_number: str
    status: ResultStatus
    total: Decimal | None
    max_total: Decimal | None
    percentage: Decimal | None
    grade: str | None
    gpa: Decimal | None
    passed: bool | None
    rank: int | None
    subjects: tuple[SubjectResult, ...]
