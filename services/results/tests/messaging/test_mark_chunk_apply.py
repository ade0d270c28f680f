"""The set-based apply of an import chunk (one SQL statement, ADR 0017), called directly.

Its verdicts must be those of the API's validation (``validate_entries``, the
domain's ``validate_mark``): same rows valid, same problems in the same order,
for the awkward marks too. Updates audit the old values; counts add up.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from httpx import AsyncClient
from results_service.contracts import MarkImportChunkResultV1, MarkImportChunkV1
from results_service.store.exams import get_exam
from results_service.store.students import StudentRecord
from results_service.usecases.mark_entries import MarkInput, validate_entries
from results_service.usecases.mark_imports import import_mark_chunk
from results_support import Caller, exam_payload, seed_students
from service_kit.db import Database
from sqlalchemy import text


class _NoOneElse:
    """auth knows nobody the read model lacks."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    async def lookup(self, numbers: Sequence[str]) -> list[StudentRecord]:
        self.asked.append(list(numbers))
        return []


async def _exam(client: AsyncClient, admin: Caller) -> uuid.UUID:
    response = await client.post("/api/v1/exams", json=exam_payload(), headers=admin.headers)
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["id"])


def _chunk(exam_id: uuid.UUID, admin: Caller, rows: list[dict[str, Any]], **over: Any) -> Any:
    return MarkImportChunkV1.model_validate(
        {
            "job_id": str(uuid.uuid4()),
            "chunk_no": 0,
            "exam_id": str(exam_id),
            "mode": "partial",
            "dry_run": False,
            "requested_by": {"user_id": str(admin.user_id), "role": admin.role},
            "rows": rows,
        }
        | over
    )


def _row(row: int, number: str, subject: str, status: str, mark: Any = None) -> dict[str, Any]:
    return {"row": row, "student_number": number, "subject_code": subject, "status": status,
            "mark": mark}  # fmt: skip


async def _apply(db: Database, chunk: Any) -> MarkImportChunkResultV1:
    async with db.transaction() as session:
        return await import_mark_chunk(session, _NoOneElse(), chunk)


# Awkward marks for MATH (max 100) and PHYS (max 50), with every status.
_MARKS: list[Any] = [
    "0", "0.00", "-0", "100", "100.00", "100.000", "100.001", "100.01", "-0.01", "50",
    "50.5", "1.005", "1.50", "1.500000000000000000000000000000", "1E+2", "1E+1", "2E+3",
    "1E-7", "1E+1000000", "1E-100000", "99999.99", "123456789012345678901234.5",
    "0.1000000000000000000000000000000000000001", None, "7.25",
]  # fmt: skip


async def test_rows_are_judged_as_the_api_judges_them(
    client: AsyncClient, db: Database, admin: Caller
) -> None:
    exam_id = await _exam(client, admin)
    rows: list[dict[str, Any]] = []
    for mark in _MARKS:
        for status in ("present", "absent", "exempt", "PRESENT", "bogus"):
            for subject in ("MATH", "PHYS", "ART"):
                n = len(rows)
                # Mostly known students, one row each; some unknown, padded or empty.
                number = f"Q{n}" if n % 7 else f"NOPE{n}"
                number = f"  {number} " if n % 11 == 0 else number
                rows.append(_row(n + 2, "" if n == 5 else number, subject, status, mark))
    ids = await seed_students(db, [f"Q{n}" for n in range(len(rows)) if n % 7])
    # Duplicates, one of them also otherwise invalid.
    rows += [_row(len(rows) + 2, "Q1", "ART", "present", "10"),
             _row(len(rows) + 3, "Q1", "ART", "present", "101")]  # fmt: skip
    chunk = _chunk(exam_id, admin, rows)
    async with db.read_session() as session:
        exam = await get_exam(session, exam_id)
    assert exam is not None
    entries = [
        MarkInput(r.row, r.student_number.strip(), r.subject_code.strip(), r.status, r.mark)
        for r in chunk.rows
    ]
    expected = validate_entries(exam, entries, ids)

    answer = await _apply(db, chunk)

    assert [(e.row, e.column, e.code, e.message, e.value) for e in answer.errors] == [
        (p.ref, "mark" if p.field == "status" else p.field, p.code.value, p.message, p.value)
        for p in expected.problems
    ]
    assert len(expected.valid) > 20
    assert answer.rows_failed == len(expected.failed_refs)
    assert answer.rows_ok == len(expected.valid) and answer.rows_unchanged == 0
    async with db.read_session() as session:
        stored = (
            await session.execute(
                text("SELECT student_id, subject_code, status, mark FROM results.marks")
            )
        ).all()
    assert sorted((r[0], r[1], r[2], r[3]) for r in stored) == sorted(
        (w.student_id, w.subject_code, w.status, w.mark) for w in expected.valid
    )


async def test_an_update_audits_the_old_values_and_counts_unchanged_rows(
    client: AsyncClient, db: Database, admin: Caller
) -> None:
    exam_id = await _exam(client, admin)
    ids = await seed_students(db, ["U1", "U2"])
    first = await _apply(
        db,
        _chunk(exam_id, admin, [_row(2, "U1", "MATH", "present", "40"),
                                _row(3, "U1", "PHYS", "absent"),
                                _row(4, "U2", "MATH", "present", "7.5")]),
    )  # fmt: skip
    assert (first.rows_ok, first.rows_unchanged, first.marks_version) == (3, 0, 1)
    chunk = _chunk(
        exam_id,
        admin,
        [_row(2, "U1", "MATH", "present", "40.00"),  # the same mark
         _row(3, "U1", "PHYS", "present", "20"),  # absent -> present
         _row(4, "U2", "MATH", "exempt"),  # present -> exempt
         _row(5, "U2", "PHYS", "present", "51")],  # over PHYS's 50
        chunk_no=1,
    )  # fmt: skip
    second = await _apply(db, chunk)
    assert (second.applied, second.rows_ok, second.rows_unchanged, second.rows_failed) == (
        True, 2, 1, 1,
    )  # fmt: skip
    assert second.marks_version == 2
    async with db.read_session() as session:
        audit = (
            await session.execute(
                text(
                    "SELECT student_id, subject_code, old_status, old_mark, new_status, new_mark "
                    "FROM results.mark_audit WHERE job_id = :j ORDER BY id"
                ),
                {"j": chunk.job_id},
            )
        ).all()
    assert sorted(tuple(a) for a in audit) == sorted(
        [
            (ids["U1"], "PHYS", "absent", None, "present", Decimal("20.00")),
            (ids["U2"], "MATH", "present", Decimal("7.50"), "exempt", None),
        ]
    )


async def test_dry_run_and_all_or_nothing_count_without_writing(
    client: AsyncClient, db: Database, admin: Caller
) -> None:
    exam_id = await _exam(client, admin)
    await seed_students(db, ["W1"])
    await _apply(db, _chunk(exam_id, admin, [_row(2, "W1", "MATH", "present", "10")]))
    rows = [_row(2, "W1", "MATH", "present", "10"), _row(3, "W1", "PHYS", "present", "11")]
    dry = await _apply(db, _chunk(exam_id, admin, rows, dry_run=True))
    assert (dry.applied, dry.rows_ok, dry.rows_unchanged, dry.rows_failed) == (False, 1, 1, 0)
    bad = [*rows, _row(4, "W1", "ART", "present", "1")]
    refused = await _apply(db, _chunk(exam_id, admin, bad, mode="all_or_nothing"))
    assert (refused.applied, refused.rows_ok, refused.rows_unchanged, refused.rows_failed) == (
        False, 1, 1, 1,
    )  # fmt: skip
    whole = await _apply(db, _chunk(exam_id, admin, rows, mode="all_or_nothing"))
    assert (whole.applied, whole.rows_ok, whole.rows_unchanged, whole.marks_version) == (
        True, 1, 1, 2,
    )  # fmt: skip
    async with db.read_session() as session:
        count = (await session.execute(text("SELECT count(*) FROM results.marks"))).scalar_one()
    assert count == 2


async def test_new_and_stored_marks_of_one_student_in_one_chunk(
    client: AsyncClient, db: Database, admin: Caller
) -> None:
    # A student's stored marks are read once per student (ADR 0023): a chunk that
    # inserts one subject and updates another of the same student, beside a
    # student with nothing stored, writes and audits each row exactly once.
    exam_id = await _exam(client, admin)
    ids = await seed_students(db, ["N1", "N2"])
    await _apply(db, _chunk(exam_id, admin, [_row(2, "N1", "MATH", "present", "30")]))
    chunk = _chunk(
        exam_id,
        admin,
        [_row(2, "N2", "PHYS", "present", "12"),  # nothing stored for N2
         _row(3, "N1", "PHYS", "exempt"),  # new for N1
         _row(4, "N1", "MATH", "present", "31.5"),  # stored 30 -> 31.5
         _row(5, "N2", "MATH", "absent")],
        chunk_no=1,
    )  # fmt: skip
    answer = await _apply(db, chunk)
    assert (answer.applied, answer.rows_ok, answer.rows_unchanged, answer.rows_failed) == (
        True, 4, 0, 0,
    )  # fmt: skip
    async with db.read_session() as session:
        stored = (
            await session.execute(
                text("SELECT student_id, subject_code, status, mark FROM results.marks")
            )
        ).all()
        audit = (
            await session.execute(
                text(
                    "SELECT student_id, subject_code, old_status, old_mark, new_status, new_mark "
                    "FROM results.mark_audit WHERE job_id = :j"
                ),
                {"j": chunk.job_id},
            )
        ).all()
    assert sorted(tuple(r) for r in stored) == sorted(
        [
            (ids["N1"], "MATH", "present", Decimal("31.50")),
            (ids["N1"], "PHYS", "exempt", None),
            (ids["N2"], "MATH", "absent", None),
            (ids["N2"], "PHYS", "present", Decimal("12.00")),
        ]
    )
    assert sorted(tuple(a) for a in audit) == sorted(
        [
            (ids["N1"], "MATH", "present", Decimal("30.00"), "present", Decimal("31.50")),
            (ids["N1"], "PHYS", None, None, "exempt", None),
            (ids["N2"], "MATH", None, None, "absent", None),
            (ids["N2"], "PHYS", None, None, "present", Decimal("12.00")),
        ]
    )
    again = await _apply(db, _chunk(exam_id, admin, chunk.model_dump(mode="json")["rows"]))
    assert (again.rows_ok, again.rows_unchanged) == (0, 4)
