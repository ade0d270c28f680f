"""POST /exams/{id}/results/generate: who may call it, what it answers, and the 503 when
fresh results take longer than the wait budget (the generation itself carries on)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from decimal import Decimal

from gen_support import create_exam, create_students, running_app, write_marks
from results_service.domain import ExamRules, GradeBand, MarkEntry, MarkStatus, Subject
from results_service.generation.runner import GenerationRunner
from results_service.settings import ResultsSettings
from results_support import Caller, JwtKeys
from service_kit.db import Database
from service_kit.host import component

D = Decimal
RULES = ExamRules((Subject("X", D(10), D(5)),), (GradeBand("F", D(0), D(0)),))


async def _exam(db: Database, marks: int = 0) -> uuid.UUID:
    async with db.primary.connect() as conn:
        async with conn.begin():
            ids = await create_students(conn, [f"G{i}" for i in range(marks)])
            exam_id = await create_exam(conn, RULES)
        if marks:
            entries = [MarkEntry(n, "X", MarkStatus.PRESENT, D(i % 11)) for i, n in enumerate(ids)]
            await write_marks(conn, exam_id, entries, ids)
    return exam_id


async def test_generate_answers_the_contract_and_only_for_staff(
    db: Database,
    settings: ResultsSettings,
    jwt_keys: JwtKeys,
    admin: Caller,
    examiner: Caller,
    student: Caller,
) -> None:
    empty = await _exam(db)
    exam_id = await _exam(db, marks=5)
    async with running_app(settings, jwt_keys) as (_, client):
        url = f"/api/v1/exams/{exam_id}/results/generate"
        assert (await client.post(url, headers=student.headers)).status_code == 403
        assert (await client.post(url)).status_code == 401
        missing = await client.post(
            f"/api/v1/exams/{uuid.uuid4()}/results/generate", headers=admin.headers
        )
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"

        first = await client.post(url, headers=examiner.headers)
        assert first.status_code == 200
        body = first.json()
        assert list(body) == [
            "exam_id", "generation", "candidates", "complete", "incomplete", "changed",
            "generated_at",
        ]  # fmt: skip
        assert (body["exam_id"], body["generation"], body["candidates"]) == (str(exam_id), 1, 5)
        assert (body["complete"], body["incomplete"], body["changed"]) == (5, 0, 5)
        # Already fresh: no new generation, the same answer.
        again = (await client.post(url, headers=admin.headers)).json()
        assert again == body
        exam = (await client.get(f"/api/v1/exams/{exam_id}", headers=admin.headers)).json()
        assert exam["results_stale"] is False
        generated_at = datetime.fromisoformat(exam["results_generated_at"].replace("Z", "+00:00"))
        assert generated_at == datetime.fromisoformat(body["generated_at"])

        nothing = await client.post(
            f"/api/v1/exams/{empty}/results/generate", headers=admin.headers
        )
        assert nothing.status_code == 200
        assert (nothing.json()["candidates"], nothing.json()["generation"]) == (0, 1)


async def test_generate_answers_503_with_retry_after_when_it_takes_too_long(
    db: Database, settings: ResultsSettings, jwt_keys: JwtKeys, admin: Caller
) -> None:
    exam_id = await _exam(db, marks=3)
    settings = settings.model_copy(update={"generation_wait_seconds": 0.3})
    release = asyncio.Event()
    async with running_app(settings, jwt_keys) as (app, client):
        runner = component(app, GenerationRunner)

        async def slow(_: uuid.UUID, __: int) -> None:
            await release.wait()

        runner.after_compute = slow
        url = f"/api/v1/exams/{exam_id}/results/generate"
        late = await client.post(url, headers=admin.headers)
        assert late.status_code == 503
        assert late.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"
        assert late.headers["retry-after"] == "5"
        # The generation was not abandoned: released, it commits, and the retry is fresh.
        release.set()
        await asyncio.sleep(0.3)
        runner.after_compute = None
        retry = await client.post(url, headers=admin.headers)
        assert retry.status_code == 200 and retry.json()["generation"] == 1
