"""Stale exams regenerate by themselves: debounced after ``marks.changed`` (through the
real outbox relay and RabbitMQ), and through the sweep when no message comes."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal
from typing import Any

import pytest
from gen_support import create_exam, create_students, running_app, scalar, write_marks
from results_service.domain import ExamRules, GradeBand, MarkEntry, MarkStatus, Subject
from results_service.generation.autoregen import AutoRegenerator
from results_service.settings import ResultsSettings
from results_support import Caller, JwtKeys, eventually, present
from service_kit.db import Database
from service_kit.host import component

D = Decimal
RULES = ExamRules((Subject("MATH", D(100), D(40)),), (GradeBand("F", D(0), D(0)),))


async def _fresh(db: Database, exam_id: uuid.UUID) -> bool:
    return bool(
        await scalar(
            db,
            "SELECT results_version IS NOT NULL AND results_version >= marks_version "
            "FROM results.exams WHERE id = :e",
            e=exam_id,
        )
    )


@pytest.mark.fault
async def test_a_burst_of_mark_writes_regenerates_once_after_the_debounce(
    db: Database, worker_app: Any, admin: Caller
) -> None:
    app, client = worker_app
    async with db.primary.connect() as conn, conn.begin():
        await create_students(conn, [f"A{i}" for i in range(20)])
        exam_id = await create_exam(conn, RULES)
    url = f"/api/v1/exams/{exam_id}/marks"
    for i in range(5):  # five batches, each publishing marks.changed
        body = {"marks": [present(f"A{j}", "MATH", 10 * i + j) for j in range(20)]}
        response = await client.put(url, json=body, headers=admin.headers)
        assert response.status_code == 200, response.text
    last_write = time.monotonic()
    await eventually(lambda: _fresh(db, exam_id), timeout=20, what="automatic regeneration")
    latency = time.monotonic() - last_write
    runs = await scalar(
        db, "SELECT count(*) FROM results.generation_runs WHERE exam_id = :e", e=exam_id
    )
    exam = (await client.get(f"/api/v1/exams/{exam_id}", headers=admin.headers)).json()
    debounce = component(app, AutoRegenerator).board._delay_ms / 1000
    print(
        f"\n[autoregen] 5 mark batches -> fresh {latency:.2f}s after the last one "
        f"(debounce {debounce:.1f}s), generations: {runs}"
    )
    assert exam["results_stale"] is False and exam["results_generated_at"] is not None
    assert runs == 1
    assert latency >= debounce * 0.9


async def test_sweep_regenerates_a_stale_exam_whose_message_was_lost(
    db: Database, settings: ResultsSettings, jwt_keys: JwtKeys
) -> None:
    async with db.primary.connect() as conn:
        async with conn.begin():
            ids = await create_students(conn, ["W1"])
            exam_id = await create_exam(conn, RULES)
        # Written without marks.changed: as if the message had been lost.
        await write_marks(conn, exam_id, [MarkEntry("W1", "MATH", MarkStatus.PRESENT, D(5))], ids)
    async with running_app(settings, jwt_keys) as (app, _):
        regenerator = component(app, AutoRegenerator)
        assert await regenerator.sweep() >= 1
        deadline = time.monotonic() + 10
        while not await _fresh(db, exam_id):
            await regenerator.drain_once()
            assert time.monotonic() < deadline, "the sweep did not regenerate the exam"
            await asyncio.sleep(0.1)
