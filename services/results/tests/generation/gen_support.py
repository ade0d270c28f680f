"""Test data for the generation tests: exams, students and marks written with SQL.

Marks are written the way the marks use case does (exam row locked, upsert,
``marks_version`` bumped in the same transaction), so the generation sees the
same concurrency as in production without depending on the HTTP layer.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from results_service.domain import (
    ExamRules,
    GradeBand,
    MarkEntry,
    MarkStatus,
    RankMethod,
    StudentResult,
    Subject,
    generate_results,
)
from results_service.main import create_app
from results_service.settings import ResultsSettings
from results_service.store.students import StudentRecord, upsert_students
from results_support import JwtKeys, static_verifier
from service_kit.db import Database
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

S = "results"
ACTOR = uuid.UUID("00000000-0000-0000-0000-00000000a11e")


def cents(value: int) -> Decimal:
    return Decimal(f"{value}E-2").quantize(Decimal("0.01"))


# -- writing -----------------------------------------------------------------


async def create_exam(
    conn: AsyncConnection, rules: ExamRules, *, code: str | None = None, name: str = "Exam"
) -> uuid.UUID:
    exam_id = uuid.uuid4()
    await conn.execute(
        text(
            f"INSERT INTO {S}.exams (id, code, name, pass_percent, rank_method, created_by) "
            "VALUES (:id, :code, :name, :pp, :rm, :by)"
        ),
        {
            "id": exam_id,
            "code": code or f"EX-{exam_id.hex[:10]}",
            "name": name,
            "pp": rules.pass_percent,
            "rm": rules.rank_method.value,
            "by": ACTOR,
        },
    )
    await conn.execute(
        text(
            f"INSERT INTO {S}.subjects (exam_id, code, position, name, max_mark, pass_mark, "
            "credits) VALUES (:e, :code, :pos, :code, :max, :pass, :credits)"
        ),
        [
            {
                "e": exam_id,
                "code": s.code,
                "pos": i,
                "max": s.max_mark,
                "pass": s.pass_mark,
                "credits": s.credits,
            }
            for i, s in enumerate(rules.subjects)
        ],
    )
    await conn.execute(
        text(
            f"INSERT INTO {S}.grade_bands (exam_id, grade, min_percent, points) "
            "VALUES (:e, :g, :m, :p)"
        ),
        [
            {"e": exam_id, "g": b.grade, "m": b.min_percent, "p": b.points}
            for b in rules.grading_scale
        ],
    )
    return exam_id


async def create_students(
    conn: AsyncConnection, numbers: Iterable[str], *, names: dict[str, str] | None = None
) -> dict[str, uuid.UUID]:
    """Students in the read model (through its store, as if their events had arrived)."""
    records = [
        StudentRecord(
            uuid.uuid4(), n, (names or {}).get(n, f"Student {n}"), f"{n.lower()}@example.edu",
            True, 1,
        )
        for n in numbers
    ]  # fmt: skip
    session = AsyncSession(bind=conn)
    for start in range(0, len(records), 1000):
        await upsert_students(session, records[start : start + 1000])
    return {r.student_number: r.user_id for r in records}


async def write_marks(
    conn: AsyncConnection,
    exam_id: uuid.UUID,
    entries: Sequence[MarkEntry],
    ids: dict[str, uuid.UUID],
    *,
    delete: Sequence[tuple[str, str]] = (),
) -> int:
    """Upserts ``entries`` (and deletes ``delete`` pairs) in one transaction, the
    marks use case's way: exam row locked, marks_version bumped. Returns it."""
    async with conn.begin():
        await conn.execute(
            text(f"SELECT 1 FROM {S}.exams WHERE id = :e FOR UPDATE"), {"e": exam_id}
        )
        if entries:
            await conn.execute(
                text(
                    f"""
INSERT INTO {S}.marks (exam_id, student_id, subject_code, status, mark, updated_by)
SELECT :e, u.sid, u.code, u.status, u.mark, :by
FROM unnest(CAST(:sids AS uuid[]), CAST(:codes AS text[]), CAST(:statuses AS text[]),
            CAST(:marks AS numeric[])) AS u(sid, code, status, mark)
ON CONFLICT (exam_id, student_id, subject_code)
DO UPDATE SET status = excluded.status, mark = excluded.mark, updated_at = now()
"""
                ),
                {
                    "e": exam_id,
                    "by": ACTOR,
                    "sids": [ids[m.student_number] for m in entries],
                    "codes": [m.subject_code for m in entries],
                    "statuses": [m.status.value for m in entries],
                    "marks": [m.mark for m in entries],
                },
            )
        for number, code in delete:
            await conn.execute(
                text(
                    f"DELETE FROM {S}.marks WHERE exam_id = :e AND student_id = :s "
                    "AND subject_code = :c"
                ),
                {"e": exam_id, "s": ids[number], "c": code},
            )
        version = await conn.scalar(
            text(
                f"UPDATE {S}.exams SET marks_version = marks_version + 1 WHERE id = :e "
                "RETURNING marks_version"
            ),
            {"e": exam_id},
        )
    return int(version or 0)


# -- reading -----------------------------------------------------------------


@dataclass(frozen=True)
class StoredResult:
    student_id: uuid.UUID
    student_number: str
    status: str
    total: Decimal | None
    max_total: Decimal | None
    percentage: Decimal | None
    grade: str | None
    gpa: Decimal | None
    passed: bool | None
    rank: int | None
    generation: int
    subjects: list[dict[str, Any]]


async def read_results(conn: AsyncConnection, exam_id: uuid.UUID) -> list[StoredResult]:
    """Stored results in listing order; subject numbers parsed as Decimal (never float)."""
    rows = (
        await conn.execute(
            text(
                f"SELECT student_id, student_number, status, total, max_total, percentage, "
                f"grade, gpa, passed, rank, generation, "
                f"results.subject_results(subjects)::text AS subjects "
                f"FROM {S}.results WHERE exam_id = :e "
                f"ORDER BY coalesce(rank, 2147483647), student_number"
            ),
            {"e": exam_id},
        )
    ).all()
    await conn.commit()
    return [
        StoredResult(
            **{k: v for k, v in r._mapping.items() if k != "subjects"},
            subjects=json.loads(r.subjects, parse_float=Decimal, parse_int=Decimal),
        )
        for r in rows
    ]


def _num(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def assert_matches_domain(
    stored: Sequence[StoredResult], expected: Sequence[StudentResult], context: str = ""
) -> None:
    """Every field of every row equal to the pure module's result, in the same order."""
    got_order = [r.student_number for r in stored]
    want_order = [r.student_number for r in expected]
    assert got_order == want_order, f"{context}: order/candidates differ"
    for row, want in zip(stored, expected, strict=True):
        where = f"{context} student {want.student_number}"
        assert row.status == want.status.value, where
        assert row.total == want.total, (where, row.total, want.total)
        assert row.max_total == want.max_total, (where, row.max_total, want.max_total)
        assert row.percentage == want.percentage, (where, row.percentage, want.percentage)
        assert row.grade == want.grade, (where, row.grade, want.grade)
        assert row.gpa == want.gpa, (where, row.gpa, want.gpa)
        assert row.passed == want.passed, (where, row.passed, want.passed)
        assert row.rank == want.rank, (where, row.rank, want.rank)
        assert len(row.subjects) == len(want.subjects), where
        for got_s, want_s in zip(row.subjects, want.subjects, strict=True):
            assert got_s["code"] == want_s.code, where
            assert got_s["status"] == want_s.status.value, where
            assert _num(got_s["mark"]) == want_s.mark, (where, got_s, want_s)
            assert _num(got_s["percentage"]) == want_s.percentage, (where, got_s, want_s)
            assert got_s["grade"] == want_s.grade, (where, got_s, want_s)
            assert _num(got_s["points"]) == want_s.points, (where, got_s, want_s)
            assert got_s["passed"] == want_s.passed, (where, got_s, want_s)
            if want_s.mark is not None:
                # Two decimals exactly, as the JSON API shows them.
                assert _num(got_s["mark"]).as_tuple().exponent == -2, where  # type: ignore[union-attr]


def expected_results(rules: ExamRules, entries: Iterable[MarkEntry]) -> list[StudentResult]:
    return generate_results(rules, entries)


# -- random exams ------------------------------------------------------------


def random_rules(rng: random.Random) -> ExamRules:
    subjects = []
    for index in range(rng.randint(1, 6)):
        max_cents = rng.choice([10000, 5000, 20000, 750, 1000, rng.randint(1, 100_000)])
        pass_cents = rng.choice([0, max_cents, max_cents * 2 // 5, rng.randint(0, max_cents)])
        credits = Decimal(rng.choice(["1", "1", "2", "3", "0.5", "1.25"]))
        subjects.append(Subject(f"S{index}", cents(max_cents), cents(pass_cents), credits))
    minimums = rng.sample(range(1, 10_001), rng.randint(0, 6))
    if rng.random() < 0.5:
        minimums = sorted({*minimums, 4000, 6000, 8000})
    bands = [
        GradeBand(
            f"G{i}", cents(m), cents(rng.choice([0, 100, 200, 300, 400, rng.randint(0, 999)]))
        )
        for i, m in enumerate([0, *minimums])
    ]
    rng.shuffle(bands)
    return ExamRules(
        tuple(subjects),
        tuple(bands),
        pass_percent=cents(rng.choice([0, 4000, 5000, rng.randint(0, 10_000)])),
        rank_method=rng.choice(list(RankMethod)),
    )


def random_mark(rng: random.Random, subject: Subject) -> Decimal:
    max_cents = int(subject.max_mark * 100)
    # 79.995 % style boundaries: mark = 79.995 % of max when that is whole cents.
    boundary = [c for c in (max_cents * 79995 // 100000,) if c * 100000 == max_cents * 79995]
    pool = [0, max_cents, max_cents // 2, int(subject.pass_mark * 100), *boundary]
    if rng.random() < 0.5:
        return cents(rng.choice(pool))
    return cents(rng.randint(0, max_cents))


def random_entries(rng: random.Random, rules: ExamRules, numbers: Sequence[str]) -> list[MarkEntry]:
    entries = []
    kinds = ["present"] * 8 + ["absent", "exempt", "none"]
    for number in numbers:
        profile = rng.random()
        for subject in rules.subjects:
            if profile < 0.05:
                kind = "exempt"  # all-exempt candidates
            elif profile < 0.10:
                kind = rng.choice(["none", "present"])  # likely incomplete
            else:
                kind = rng.choice(kinds)
            if kind == "none":
                continue
            if kind == "present":
                entries.append(
                    MarkEntry(number, subject.code, MarkStatus.PRESENT, random_mark(rng, subject))
                )
            else:
                entries.append(MarkEntry(number, subject.code, MarkStatus(kind)))
    return entries


def mutate_entries(
    rng: random.Random, rules: ExamRules, entries: Sequence[MarkEntry], fraction: float
) -> tuple[list[MarkEntry], list[MarkEntry], list[tuple[str, str]]]:
    """(new full entry list, entries to upsert, (number, code) pairs to delete)."""
    by_key = {(e.student_number, e.subject_code): e for e in entries}
    keys = list(by_key)
    upserts: list[MarkEntry] = []
    deletes: list[tuple[str, str]] = []
    subjects = {s.code: s for s in rules.subjects}
    for key in rng.sample(keys, max(1, int(len(keys) * fraction))) if keys else []:
        roll = rng.random()
        if roll < 0.15:
            deletes.append(key)
            del by_key[key]
            continue
        if roll < 0.25:
            new = MarkEntry(key[0], key[1], rng.choice([MarkStatus.ABSENT, MarkStatus.EXEMPT]))
        else:
            new = MarkEntry(key[0], key[1], MarkStatus.PRESENT, random_mark(rng, subjects[key[1]]))
        by_key[key] = new
        upserts.append(new)
    return list(by_key.values()), upserts, deletes


# -- running apps ("replicas") -------------------------------------------------


@asynccontextmanager
async def running_app(
    settings: ResultsSettings, keys: JwtKeys
) -> AsyncIterator[tuple[FastAPI, AsyncClient]]:
    """One replica of the service in-process, with its real lifespan."""
    app = create_app(settings)
    app.state.token_verifier = static_verifier(keys, settings)
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://results.test") as client,
    ):
        yield app, client


async def marks_of(conn: AsyncConnection, exam_id: uuid.UUID) -> list[MarkEntry]:
    """The exam's entries as the pure module takes them."""
    rows = (
        await conn.execute(
            text(
                f"SELECT st.student_number, m.subject_code, m.status, m.mark "
                f"FROM {S}.marks m JOIN {S}.students st ON st.user_id = m.student_id "
                f"WHERE m.exam_id = :e"
            ),
            {"e": exam_id},
        )
    ).all()
    await conn.commit()
    return [MarkEntry(r.student_number, r.subject_code, MarkStatus(r.status), r.mark) for r in rows]


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.read_session(fresh=True) as session:
        return (await session.execute(text(sql), params)).scalar()


def metric_value(metrics_text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 if absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics_text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if "{" in head:
            metric, _, raw = head.partition("{")
            got = ",".join(sorted(raw.rstrip("}").split(",")))
        else:
            metric, got = head, ""
        if metric == name and got == want:
            return float(value)
    return 0.0
