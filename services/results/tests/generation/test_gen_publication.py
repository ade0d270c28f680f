"""Publication: now or scheduled (once across replicas, surviving restarts), the 409s,
and the events: ``results.published`` in chunks, ``results.updated`` for exactly the
students whose result changed (consumed from a real RabbitMQ queue)."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from gen_support import (
    create_exam,
    create_students,
    random_entries,
    read_results,
    running_app,
    scalar,
    write_marks,
)
from httpx import AsyncClient
from redis.asyncio import Redis
from results_service.domain import ExamRules, GradeBand, MarkEntry, MarkStatus, Subject
from results_service.generation.runner import GenerationRunner
from results_service.publication.scheduler import PublicationScheduler
from results_service.settings import ResultsSettings
from results_support import Caller, EventTap, JwtKeys, eventually
from service_kit.db import Database
from service_kit.lock import DistributedLock

D = Decimal
RULES = ExamRules(
    (Subject("A", D(100), D(40)), Subject("B", D(100), D(40))),
    (GradeBand("P", D(50), D(2)), GradeBand("F", D(0), D(0))),
    pass_percent=D(40),
)


async def _exam(
    db: Database, students: int, *, prefix: str = "P", seed: int = 1
) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    rng = random.Random(seed)
    async with db.primary.connect() as conn:
        async with conn.begin():
            ids = await create_students(conn, [f"{prefix}{i:05d}" for i in range(students)])
            exam_id = await create_exam(conn, RULES, name="Finals 2026")
        await write_marks(conn, exam_id, random_entries(rng, RULES, list(ids)), ids)
    return exam_id, ids


def _full(ids: dict[str, uuid.UUID], marks: dict[str, tuple[int, int]]) -> list[MarkEntry]:
    return [
        MarkEntry(n, code, MarkStatus.PRESENT, D(mark))
        for n, pair in marks.items()
        for code, mark in zip(("A", "B"), pair, strict=True)
    ]


async def _generate(client: AsyncClient, admin: Caller, exam_id: uuid.UUID) -> dict[str, Any]:
    response = await client.post(f"/api/v1/exams/{exam_id}/results/generate", headers=admin.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_publish_now_announces_every_candidate_in_chunks_of_500(
    db: Database, worker_app: Any, admin: Caller, worker_settings: ResultsSettings
) -> None:
    _, client = worker_app
    exam_id, _ = await _exam(db, 1100)
    generated = await _generate(client, admin, exam_id)
    async with EventTap(worker_settings, ["results.published"]) as tap:
        response = await client.post(f"/api/v1/exams/{exam_id}/publish", headers=admin.headers)
        assert response.status_code == 200, response.text
        exam = response.json()
        assert exam["status"] == "published" and exam["published_at"] is not None
        events = await tap.wait_for(3, timeout=20)
    chunks = sorted((e.data for e in events), key=lambda d: d["chunk_no"])
    assert [c["chunk_no"] for c in chunks] == [0, 1, 2]
    assert {c["chunk_count"] for c in chunks} == {3}
    assert [len(c["recipients"]) for c in chunks] == [500, 500, generated["candidates"] - 1000]
    numbers = [r["student_number"] for c in chunks for r in c["recipients"]]
    assert numbers == sorted(numbers) and len(set(numbers)) == generated["candidates"] > 1000
    assert {c["exam_code"] for c in chunks} == {exam["code"]}
    assert {c["exam_name"] for c in chunks} == {"Finals 2026"}
    assert {c["generation"] for c in chunks} == {generated["generation"]}
    assert {e.producer for e in events} == {"results"}


async def test_publish_refuses_stale_results_and_a_second_publication(
    db: Database, client: AsyncClient, admin: Caller, examiner: Caller
) -> None:
    exam_id, ids = await _exam(db, 10)
    url = f"/api/v1/exams/{exam_id}/publish"
    never = await client.post(url, headers=admin.headers)
    assert never.status_code == 409 and never.json()["error"]["code"] == "RESULTS_STALE"
    await _generate(client, admin, exam_id)
    async with db.primary.connect() as conn:
        await write_marks(conn, exam_id, [MarkEntry("P00001", "A", MarkStatus.ABSENT)], ids)
    stale = await client.post(url, headers=admin.headers)
    assert stale.status_code == 409 and stale.json()["error"]["code"] == "RESULTS_STALE"
    exam = (await client.get(f"/api/v1/exams/{exam_id}", headers=admin.headers)).json()
    assert exam["results_stale"] is True and exam["status"] == "draft"
    await _generate(client, admin, exam_id)
    assert (await client.post(url, headers=examiner.headers)).status_code == 403
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    published = await client.post(url, json={"at": past}, headers=admin.headers)
    assert published.status_code == 200 and published.json()["status"] == "published"
    for body in (None, {"at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}):
        again = await client.post(url, json=body, headers=admin.headers)
        assert again.status_code == 409 and again.json()["error"]["code"] == "EXAM_PUBLISHED"
    unknown = await client.post(f"/api/v1/exams/{uuid.uuid4()}/publish", headers=admin.headers)
    assert unknown.status_code == 404
    naive = await client.post(url, json={"at": "2030-01-01T00:00:00"}, headers=admin.headers)
    assert naive.status_code in (400, 422)


async def test_scheduled_publication_runs_once_across_two_pollers(
    db: Database, client: AsyncClient, admin: Caller, redis: Redis, settings: ResultsSettings
) -> None:
    exam_id, _ = await _exam(db, 600)
    await _generate(client, admin, exam_id)
    at = datetime.now(UTC) + timedelta(seconds=1)
    response = await client.post(
        f"/api/v1/exams/{exam_id}/publish", json={"at": at.isoformat()}, headers=admin.headers
    )
    assert response.status_code == 200
    assert response.json()["status"] == "scheduled"
    assert datetime.fromisoformat(response.json()["publish_at"]) == at

    def poller() -> PublicationScheduler:
        locks = DistributedLock(
            redis, key_prefix=f"{settings.redis_key_prefix}results:", name="exam"
        )
        return PublicationScheduler(db, GenerationRunner(db, locks))

    replicas = [poller(), poller()]
    published = [0, 0]

    async def poll(i: int) -> None:
        for _ in range(40):
            published[i] += sum(o.published for o in await replicas[i].run_once())
            await asyncio.sleep(0.05)

    early = await replicas[0].run_once()
    assert early == []  # not due yet
    await asyncio.gather(poll(0), poll(1))
    events = await scalar(
        db,
        "SELECT count(*) FROM results.outbox WHERE type = 'results.published' "
        "AND payload->>'exam_id' = :e",
        e=str(exam_id),
    )
    status = await scalar(db, "SELECT status FROM results.exams WHERE id = :e", e=exam_id)
    print(
        f"\n[scheduled publication, 2 concurrent pollers x 40 polls] publications per replica: "
        f"{published}; results.published events: {events} (2 chunks expected)"
    )
    assert sum(published) == 1
    assert status == "published"
    assert events == 2


async def test_scheduled_publication_survives_a_restart(
    db: Database,
    settings: ResultsSettings,
    worker_settings: ResultsSettings,
    jwt_keys: JwtKeys,
    admin: Caller,
) -> None:
    exam_id, _ = await _exam(db, 20)
    async with running_app(settings, jwt_keys) as (_, client):
        await _generate(client, admin, exam_id)
        at = datetime.now(UTC) + timedelta(seconds=1.5)
        scheduled = await client.post(
            f"/api/v1/exams/{exam_id}/publish", json={"at": at.isoformat()}, headers=admin.headers
        )
        assert scheduled.json()["status"] == "scheduled"
    # The process that scheduled it is gone; a new one (with workers) publishes it.
    async with running_app(worker_settings, jwt_keys) as (_, client):

        async def published() -> bool:
            exam = (await client.get(f"/api/v1/exams/{exam_id}", headers=admin.headers)).json()
            return bool(exam["status"] == "published")

        await eventually(published, timeout=15, what="scheduled publication after restart")
    published_at = await scalar(
        db, "SELECT published_at FROM results.exams WHERE id = :e", e=exam_id
    )
    assert published_at >= at


async def test_exam_stale_at_its_due_time_is_regenerated_then_published(
    db: Database, client: AsyncClient, admin: Caller, redis: Redis, settings: ResultsSettings
) -> None:
    exam_id, ids = await _exam(db, 30)
    await _generate(client, admin, exam_id)
    at = datetime.now(UTC) + timedelta(seconds=0.5)
    await client.post(
        f"/api/v1/exams/{exam_id}/publish", json={"at": at.isoformat()}, headers=admin.headers
    )
    async with db.primary.connect() as conn:  # a correction after scheduling
        await write_marks(conn, exam_id, [MarkEntry("P00003", "A", MarkStatus.PRESENT, D(1))], ids)
    await asyncio.sleep(0.6)
    locks = DistributedLock(redis, key_prefix=f"{settings.redis_key_prefix}results:", name="exam")
    scheduler = PublicationScheduler(db, GenerationRunner(db, locks))
    first = await scheduler.run_once()
    assert [o.published for o in first] == [False]  # due but stale: regenerating

    async def published() -> bool:
        await scheduler.run_once()
        status = await scalar(db, "SELECT status FROM results.exams WHERE id = :e", e=exam_id)
        return bool(status == "published")

    await eventually(published, timeout=15, what="publication after regeneration")
    await scheduler.stop()
    fresh = await scalar(
        db, "SELECT results_version = marks_version FROM results.exams WHERE id = :e", e=exam_id
    )
    assert fresh is True
    async with db.primary.connect() as conn:
        rows = {r.student_number: r for r in await read_results(conn, exam_id)}
    assert rows["P00003"].subjects[0]["mark"] == D("1.00")


async def test_corrections_after_publication_announce_exactly_the_changed_students(
    db: Database, worker_app: Any, admin: Caller, worker_settings: ResultsSettings
) -> None:
    _, client = worker_app
    async with db.primary.connect() as conn:
        async with conn.begin():
            ids = await create_students(conn, [f"U{i}" for i in range(1, 7)])
            exam_id = await create_exam(conn, RULES)
        marks = {"U1": (90, 90), "U2": (80, 80), "U3": (70, 70), "U4": (60, 60), "U5": (50, 50),
                 "U6": (40, 40)}  # fmt: skip
        await write_marks(conn, exam_id, _full(ids, marks), ids)
    await _generate(client, admin, exam_id)
    assert (
        await client.post(f"/api/v1/exams/{exam_id}/publish", headers=admin.headers)
    ).status_code == 200

    async def rows() -> dict[str, tuple[Any, ...]]:
        async with db.primary.connect() as conn:
            return {
                r.student_number: (r.status, r.total, r.percentage, r.grade, r.passed, r.rank,
                                   str(r.subjects))
                for r in await read_results(conn, exam_id)
            }  # fmt: skip

    corrections: list[tuple[str, list[MarkEntry], list[tuple[str, str]]]] = [
        # a mark that changes U3's total but nobody's rank: only U3
        ("U3 70 -> 71", _full(ids, {"U3": (71, 70)}), []),
        # U5 overtakes U4: both ranks change
        ("U5 overtakes U4", _full(ids, {"U5": (75, 75)}), []),
        # every entry of U6 deleted: U6 is no longer a candidate
        ("U6 withdrawn", [], [("U6", "A"), ("U6", "B")]),
        # nothing that changes a result: no event at all
        ("same marks again", _full(ids, {"U1": (90, 90)}), []),
    ]
    figures = []
    async with EventTap(worker_settings, ["results.updated"]) as tap:
        for label, upserts, deletes in corrections:
            before = await rows()
            async with db.primary.connect() as conn:
                await write_marks(conn, exam_id, upserts, ids, delete=deletes)
            generated = await _generate(client, admin, exam_id)
            after = await rows()
            expected = {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}
            if expected:
                events = await tap.wait_for(1, timeout=15)
            else:
                await asyncio.sleep(1.0)
                events = list(tap.received)
            got = [
                r for e in events if e.data["generation"] == generated["generation"]
                for r in e.data["recipients"]
            ]  # fmt: skip
            tap.received.clear()
            figures.append((label, sorted(expected), sorted(r["student_number"] for r in got)))
            assert sorted(r["student_number"] for r in got) == sorted(expected), label
            assert generated["changed"] == len(expected), label
            if label == "U6 withdrawn":
                assert {r["student_number"]: r["change"] for r in got}["U6"] == "removed"
    print("\n[results.updated after corrections] " + "; ".join(
        f"{label}: expected {exp}, announced {got}" for label, exp, got in figures
    ))  # fmt: skip
