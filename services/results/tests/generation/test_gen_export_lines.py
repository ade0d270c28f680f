"""The internal NDJSON export (bulk's source): byte for byte what it was before its
subjects were expanded in Python (``store.results._lines_builder``) instead of by
``results.subject_results`` per row in PostgreSQL."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import orjson
import pytest
from gen_support import create_exam, create_students, write_marks
from httpx import AsyncClient
from results_service.domain import ExamRules, GradeBand, MarkEntry, MarkStatus, Subject
from results_service.store import results as store
from results_support import Caller, JwtKeys
from service_kit.db import Database
from sqlalchemy import text

D = Decimal
P, AB, EX = MarkStatus.PRESENT, MarkStatus.ABSENT, MarkStatus.EXEMPT

# The export's statement before this change: every line built by PostgreSQL.
BEFORE = text(
    """
SELECT json_build_object(
           'exam_id', r.exam_id, 'student_number', r.student_number,
           'student_name', st.full_name, 'status', r.status, 'total', r.total,
           'max_total', r.max_total, 'percentage', r.percentage, 'grade', r.grade,
           'gpa', r.gpa, 'passed', r.passed, 'rank', r.rank, 'generation', r.generation,
           'subjects', results.subject_results(r.subjects)
       )::text AS body
FROM results.results r
LEFT JOIN results.students st ON st.user_id = r.student_id
WHERE r.exam_id = :exam_id
ORDER BY coalesce(r.rank, 2147483647), r.student_number
"""
)

# Codes that hold both of the fast path's separators, quotes, a backslash, non-ASCII.
CODES = ("MATH", 'Q"\\', "M], [A", "x, y", "Æsc ]]")
RULES = ExamRules(
    tuple(Subject(code, D(100), D(40), D(1)) for code in CODES),
    # No band at 0: below 50 % there is no grade (null), overall and per subject.
    (GradeBand("A", D(80), D(4)), GradeBand("B", D(50), D("2.5"))),
    pass_percent=D(40),
)
PLAIN = ExamRules(
    (Subject("MATH", D(100), D(40), D(2)), Subject("PHYS", D("50.5"), D(20), D(1))),
    (GradeBand("A", D(80), D(4)), GradeBand("C", D(45), D(2))),
    pass_percent=D(40),
)


def _marks(codes: tuple[str, ...], count: int) -> list[MarkEntry]:
    entries: list[MarkEntry] = []
    for i in range(count):
        number = f"S{i:03d}"
        for j, code in enumerate(codes):
            if i % 7 == 3 and j == len(codes) - 1:
                continue  # incomplete: no entry for the last subject
            kind = (i + j) % 6
            if kind == 4:
                entries.append(MarkEntry(number, code, AB))
            elif kind == 5:
                entries.append(MarkEntry(number, code, EX))
            else:  # few distinct marks: ties in rank, repeated elements
                entries.append(MarkEntry(number, code, P, D((i * 37 + j * 11) % 9 * 10) + D("0.5")))
    entries.append(MarkEntry("S999", codes[0], P, D("45.25")))  # a single-entry result
    return entries


async def _exam(db: Database, client: AsyncClient, admin: Caller, rules: ExamRules) -> uuid.UUID:
    entries = _marks(tuple(s.code for s in rules.subjects), 40)
    numbers = sorted({e.student_number for e in entries})
    names = {"S001": 'Zoë "Q" \\ O\'Neil\nSecond line', "S002": "Ada ], [ Lovelace, Jr"}
    async with db.primary.connect() as conn:
        async with conn.begin():
            ids = await create_students(conn, numbers, names=names)
            exam_id = await create_exam(conn, rules)
        await write_marks(conn, exam_id, entries, ids)
    response = await client.post(f"/api/v1/exams/{exam_id}/results/generate", headers=admin.headers)
    assert response.status_code == 200, response.text
    return exam_id


async def _before(db: Database, exam_id: uuid.UUID) -> bytes:
    async with db.read_session(fresh=True) as session:
        bodies = (await session.execute(BEFORE, {"exam_id": exam_id})).scalars().all()
    return b"".join(body.encode() + b"\n" for body in bodies)


@pytest.mark.parametrize("rules", [RULES, PLAIN], ids=["awkward-codes", "plain-codes"])
@pytest.mark.parametrize("batch", [5_000, 3])
async def test_export_lines_are_the_former_ones_byte_for_byte(
    client: AsyncClient,
    db: Database,
    admin: Caller,
    jwt_keys: JwtKeys,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    rules: ExamRules,
    batch: int,
) -> None:
    monkeypatch.setattr(store, "STREAM_BATCH", batch)
    exam_id = await _exam(db, client, admin, rules)
    bulk = {"Authorization": f"Bearer {jwt_keys.service_token(settings)}"}

    response = await client.get(f"/internal/exams/{exam_id}/results.ndjson", headers=bulk)

    assert response.status_code == 200
    expected = await _before(db, exam_id)
    assert response.content.splitlines() == expected.splitlines()  # a readable diff first
    assert response.content == expected
    rows = [orjson.loads(line) for line in response.content.splitlines()]
    # The exam covers what bulk's columns show: every mark status, incomplete results,
    # ties, null grades, a student without some subject.
    assert len(rows) == 41
    statuses = {s["status"] for r in rows for s in r["subjects"]}
    assert statuses == {"present", "absent", "exempt"}
    assert {r["status"] for r in rows} == {"complete", "incomplete"}
    ranks = [r["rank"] for r in rows if r["rank"] is not None]
    assert len(ranks) > len(set(ranks))
    assert any(r["grade"] is None for r in rows)
    assert any(s["grade"] is None for r in rows for s in r["subjects"])


def test_the_lines_builder_reads_any_compact_subjects_text() -> None:
    head = '{"exam_id" : "e", "student_number" : "S1", "generation" : 3}'
    objects = store._OBJECT
    cases = [
        ("[]", 0, ""),
        (
            '[["A", "present", 79.50, 79.50, "B", 3.00, true]]',
            1,
            objects.format('"A"', '"present"', "79.50", "79.50", '"B"', "3.00", "true"),
        ),
        (
            '[["M], [A", "absent", 0.00, 0.00, null, 0.00, false], '
            '["x, y\\"", "exempt", null, null, null, null, null]]',
            2,
            objects.format('"M], [A"', '"absent"', "0.00", "0.00", "null", "0.00", "false")
            + ", "
            + objects.format('"x, y\\""', '"exempt"', "null", "null", "null", "null", "null"),
        ),
    ]
    lines = store._lines_builder()
    rows = [(head, compact, count) for compact, count, _ in cases]
    expected = "".join(f'{head[:-1]}, "subjects" : [{subjects}]}}\n' for _, _, subjects in cases)
    assert lines(rows) == expected
    assert lines(rows[1:2] * 3) == expected.splitlines(keepends=True)[1] * 3
    for line in expected.splitlines():
        orjson.loads(line)


@pytest.mark.parametrize(
    ("compact", "count"),
    [
        ('[["A", "present", 1.00, 1.00, "B", 3.00]]', 1),  # six values
        ('[["A", "present", 1.00, 1.00, "B", 3.00, true]]', 2),  # count differs
        ('[{"code": "A"}]', 1),
        ("[]", 1),
    ],
)
def test_the_lines_builder_refuses_what_generation_never_writes(compact: str, count: int) -> None:
    lines = store._lines_builder()
    with pytest.raises(store.UnexpectedSubjects):
        lines([("{}", compact, count)])
