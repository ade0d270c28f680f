"""Concurrent generate calls on two replicas while marks are being written.

Every caller gets 200 and results that reflect every mark written before its
call; generations never overlap (an in-flight probe around every generation of
both replicas, and the committed generations' time spans in PostgreSQL); the
final results equal the pure module on the final marks.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from gen_support import (
    assert_matches_domain,
    create_exam,
    create_students,
    expected_results,
    marks_of,
    random_entries,
    random_mark,
    read_results,
    running_app,
    scalar,
    write_marks,
)
from results_service.domain import ExamRules, GradeBand, MarkEntry, MarkStatus, Subject
from results_service.generation.runner import GenerationRunner
from results_service.settings import ResultsSettings
from results_support import Caller, JwtKeys
from service_kit.db import Database
from service_kit.host import component
from sqlalchemy import text

D = Decimal
RULES = ExamRules(
    (Subject("M", D(100), D(40), D(2)), Subject("P", D(50), D(20)), Subject("C", D(40), D(10))),
    (GradeBand("A", D(80), D(4)), GradeBand("B", D(60), D(3)), GradeBand("C", D(40), D(2)),
     GradeBand("F", D(0), D(0))),
    pass_percent=D(40),
)  # fmt: skip


class OverlapProbe:
    """Counts generations in flight across every runner it wraps."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.runs = 0

    def wrap(self, runner: GenerationRunner) -> None:
        original = runner.generate

        async def generate(conn: Any, exam_id: uuid.UUID) -> Any:
            self.in_flight += 1
            self.runs += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                return await original(conn, exam_id)
            finally:
                self.in_flight -= 1

        runner.generate = generate  # type: ignore[method-assign]


@pytest.mark.fault
async def test_concurrent_generate_calls_coalesce_never_overlap_and_end_correct(
    db: Database, settings: ResultsSettings, jwt_keys: JwtKeys, admin: Caller, examiner: Caller
) -> None:
    rng = random.Random(2024)
    async with db.primary.connect() as conn:
        async with conn.begin():
            ids = await create_students(conn, [f"C{i:04d}" for i in range(400)])
            exam_id = await create_exam(conn, RULES)
        await write_marks(conn, exam_id, random_entries(rng, RULES, list(ids)), ids)
    numbers = list(ids)
    probe = OverlapProbe()
    writes_done = asyncio.Event()
    mark_batches = 0

    async def write_marks_continuously() -> None:
        nonlocal mark_batches
        async with db.primary.connect() as conn:
            for _ in range(25):
                batch = [
                    MarkEntry(n, s.code, MarkStatus.PRESENT, random_mark(rng, s))
                    for n in rng.sample(numbers, 15)
                    for s in RULES.subjects
                ]
                await write_marks(conn, exam_id, batch, ids)
                mark_batches += 1
                await asyncio.sleep(0.04)
        writes_done.set()

    async def generate(client: Any, who: Caller, delay: float) -> tuple[int, int, dict[str, Any]]:
        await asyncio.sleep(delay)
        before = await scalar(
            db, "SELECT marks_version FROM results.exams WHERE id = :e", e=exam_id
        )
        response = await client.post(
            f"/api/v1/exams/{exam_id}/results/generate", headers=who.headers
        )
        return response.status_code, int(before), response.json()

    async with (
        running_app(settings, jwt_keys) as (app_a, client_a),
        running_app(settings, jwt_keys) as (app_b, client_b),
    ):
        probe.wrap(component(app_a, GenerationRunner))
        probe.wrap(component(app_b, GenerationRunner))
        started = time.monotonic()
        writer = asyncio.create_task(write_marks_continuously())
        calls = [
            generate(
                client_a if i % 2 else client_b,
                admin if i % 3 else examiner,
                (i // 4) * 0.25 + i * 0.01,
            )
            for i in range(10)
        ]
        answers = await asyncio.gather(*calls)
        await writer
        wall = time.monotonic() - started
        final = await client_a.post(
            f"/api/v1/exams/{exam_id}/results/generate", headers=admin.headers
        )
        assert final.status_code == 200, final.text

    runs = {
        r.generation: r
        for r in (
            await _fetch(
                db,
                "SELECT generation, marks_version, started_at, committed_at "
                "FROM results.generation_runs WHERE exam_id = :e ORDER BY generation",
                e=exam_id,
            )
        )
    }
    for status, before, body in answers:
        assert status == 200, body
        assert set(body) == {
            "exam_id", "generation", "candidates", "complete", "incomplete", "changed",
            "generated_at",
        }  # fmt: skip
        # Results reflect every mark written before the call.
        assert runs[body["generation"]].marks_version >= before, (before, body)
    ordered = sorted(runs.values(), key=lambda r: r.generation)
    overlaps = sum(1 for a, b in itertools.pairwise(ordered) if b.started_at < a.committed_at)
    async with db.primary.connect() as conn:
        stored = await read_results(conn, exam_id)
        final_marks = await marks_of(conn, exam_id)
    distinct = len({body["generation"] for _, _, body in answers})
    print(
        f"\n[10 concurrent generate calls on 2 replicas during {mark_batches} mark batches] "
        f"{wall:.2f}s; all answered 200; {probe.runs} generations ran "
        f"({len(runs)} committed incl. the final one), callers saw {distinct} distinct "
        f"generations; max generations in flight: {probe.max_in_flight}; overlapping "
        f"committed spans: {overlaps}"
    )
    assert probe.max_in_flight == 1
    assert overlaps == 0
    assert probe.runs < 10 + 1  # coalesced: fewer generations than callers
    assert_matches_domain(stored, expected_results(RULES, final_marks), "final")
    assert (
        await scalar(
            db, "SELECT results_version = marks_version FROM results.exams WHERE id = :e", e=exam_id
        )
    ) is True


async def _fetch(db: Database, sql: str, **params: Any) -> list[Any]:
    async with db.read_session(fresh=True) as session:
        return list((await session.execute(text(sql), params)).all())
