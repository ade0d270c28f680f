"""The pure rules of a mark batch: who may write, and what makes an entry invalid."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from results_service.store.exams import ExamRecord, GradeBandRecord, SubjectRecord
from results_service.usecases.mark_entries import (
    Actor,
    MarkInput,
    authorize_mark_write,
    validate_entries,
)
from service_kit.errors import DetailCode, ErrorCode, ServiceError

ASSIGNED = uuid.uuid4()


def _exam(status: str = "draft") -> ExamRecord:
    now = datetime.now(UTC)
    return ExamRecord(
        id=uuid.uuid4(),
        code="X",
        name="X",
        term=None,
        status=status,
        publish_at=None,
        published_at=None,
        pass_percent=Decimal(0),
        rank_method="competition",
        created_by=uuid.uuid4(),
        created_at=now,
        updated_at=now,
        marks_version=0,
        results_version=None,
        results_generated_at=None,
        subjects=(
            SubjectRecord("MATH", "Maths", Decimal(100), Decimal(40), Decimal(1), (ASSIGNED,)),
            SubjectRecord("PHYS", "Physics", Decimal(50), Decimal(20), Decimal(1), ()),
        ),
        grading_scale=(GradeBandRecord("F", Decimal(0), Decimal(0)),),
    )


def _refusal(exam: ExamRecord, actor: Actor, reason: str | None, codes: list[str]) -> ErrorCode:
    with pytest.raises(ServiceError) as raised:
        authorize_mark_write(exam, actor, reason, codes)
    return raised.value.code


def test_examiner_may_write_assigned_and_unassigned_subjects_only() -> None:
    assigned = Actor(ASSIGNED, "examiner")
    other = Actor(uuid.uuid4(), "examiner")
    authorize_mark_write(_exam(), assigned, None, ["MATH", "PHYS"])
    authorize_mark_write(_exam(), other, None, ["PHYS", "UNKNOWN"])
    assert _refusal(_exam(), other, None, ["PHYS", "MATH"]) == ErrorCode.FORBIDDEN


@pytest.mark.parametrize("role", ["student", "service", ""])
def test_only_admins_and_examiners_write_marks(role: str) -> None:
    assert _refusal(_exam(), Actor(uuid.uuid4(), role), "r", []) == ErrorCode.FORBIDDEN


@pytest.mark.parametrize(
    ("role", "reason", "allowed"),
    [
        ("admin", "typo fixed", True),
        ("admin", None, False),
        ("admin", " \t", False),
        ("examiner", "typo fixed", False),
    ],
)
def test_after_publication_only_an_admin_with_a_reason(
    role: str, reason: str | None, allowed: bool
) -> None:
    actor = Actor(ASSIGNED, role)
    if allowed:
        authorize_mark_write(_exam("published"), actor, reason, ["MATH"])
    else:
        assert _refusal(_exam("published"), actor, reason, ["MATH"]) == ErrorCode.EXAM_PUBLISHED


def test_scheduled_exams_take_marks_like_drafts() -> None:
    authorize_mark_write(_exam("scheduled"), Actor(ASSIGNED, "examiner"), None, ["MATH"])


def _codes(entries: list[MarkInput], known: set[str]) -> list[tuple[int, str, DetailCode]]:
    ids = {n: uuid.uuid4() for n in known}
    batch = validate_entries(_exam(), entries, ids)
    return [(p.ref, p.field, p.code) for p in batch.problems]


def test_valid_entries_come_back_ready_to_write() -> None:
    student = uuid.uuid4()
    batch = validate_entries(
        _exam(),
        [
            MarkInput(0, "S1", "MATH", "present", Decimal("100.00")),
            MarkInput(1, "S1", "PHYS", "exempt", None),
            MarkInput(2, "S2", "PHYS", "absent", None),
        ],
        {"S1": student, "S2": uuid.uuid4()},
    )
    assert batch.problems == []
    assert [(w.student_id, w.subject_code, w.status, w.mark) for w in batch.valid][:2] == [
        (student, "MATH", "present", Decimal("100.00")),
        (student, "PHYS", "exempt", None),
    ]


@pytest.mark.parametrize(
    ("status", "mark", "expected"),
    [
        ("present", None, [DetailCode.MARK_REQUIRED]),
        ("present", Decimal("-0.01"), [DetailCode.MARK_OUT_OF_RANGE]),
        ("present", Decimal("100.01"), [DetailCode.MARK_OUT_OF_RANGE]),
        (
            "present",
            Decimal("100.001"),
            [DetailCode.MARK_OUT_OF_RANGE, DetailCode.TOO_MANY_DECIMALS],
        ),
        ("present", Decimal("0"), []),
        ("present", Decimal("99.990"), []),
        ("absent", Decimal("0"), [DetailCode.MARK_NOT_ALLOWED]),
        ("exempt", Decimal("1"), [DetailCode.MARK_NOT_ALLOWED]),
        ("Present", Decimal("1"), [DetailCode.INVALID_STATUS]),
    ],
)
def test_mark_rules_per_status(
    status: str, mark: Decimal | None, expected: list[DetailCode]
) -> None:
    found = _codes([MarkInput(0, "S1", "MATH", status, mark)], {"S1"})
    assert [code for _, _, code in found] == expected


def test_unknown_subject_still_reports_the_other_problems_of_the_entry() -> None:
    found = _codes([MarkInput(4, "NOPE", "ART", "present", Decimal("1.234"))], set())
    assert found == [
        (4, "student_number", DetailCode.STUDENT_NOT_FOUND),
        (4, "subject_code", DetailCode.SUBJECT_NOT_FOUND),
        (4, "mark", DetailCode.TOO_MANY_DECIMALS),
    ]


def test_a_pair_given_twice_is_a_duplicate_on_every_entry_involved() -> None:
    found = _codes(
        [
            MarkInput(0, "S1", "MATH", "present", Decimal(1)),
            MarkInput(1, "S1", "PHYS", "present", Decimal(1)),
            MarkInput(2, "S1", "MATH", "absent", None),
        ],
        {"S1"},
    )
    assert found == [(0, "", DetailCode.DUPLICATE_ENTRY), (2, "", DetailCode.DUPLICATE_ENTRY)]
