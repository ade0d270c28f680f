"""Bulk's mark-import chunks over real RabbitMQ: modes, dry run, idempotency, answers."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from results_service.contracts import (
    IMPORT_CHUNK_RESULT_TYPE,
    IMPORT_CHUNK_ROUTING_KEY,
    IMPORT_CHUNK_TYPE,
    MarkImportChunkResultV1,
)
from results_service.settings import ResultsSettings
from results_support import (
    AuthStub,
    Caller,
    EventTap,
    exam_payload,
    publish_event,
    seed_students,
)
from service_kit.db import Database
from sqlalchemy import text


async def _exam(client: AsyncClient, admin: Caller) -> str:
    response = await client.post("/api/v1/exams", json=exam_payload(), headers=admin.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _chunk(
    exam_id: str, requester: Caller, rows: list[dict[str, Any]], **over: Any
) -> dict[str, Any]:
    return {
        "job_id": str(uuid.uuid4()),
        "chunk_no": 0,
        "exam_id": exam_id,
        "mode": "partial",
        "dry_run": False,
        "requested_by": {"user_id": str(requester.user_id), "role": requester.role},
        "rows": rows,
    } | over


def _row(row: int, number: str, subject: str, status: str, mark: Any = None) -> dict[str, Any]:
    return {"row": row, "student_number": number, "subject_code": subject, "status": status,
            "mark": mark}  # fmt: skip


async def _send(settings: ResultsSettings, chunk: dict[str, Any], **kw: Any) -> uuid.UUID:
    return await publish_event(
        settings,
        IMPORT_CHUNK_TYPE,
        chunk,
        routing_key=IMPORT_CHUNK_ROUTING_KEY,
        producer="bulk",
        **kw,
    )


async def _scalar(db: Database, sql: str, **params: Any) -> Any:
    async with db.read_session() as session:
        return (await session.execute(text(sql), params)).scalar_one()


async def test_partial_chunk_applies_valid_rows_and_reports_bad_ones(
    worker_app: tuple[FastAPI, AsyncClient],
    worker_settings: ResultsSettings,
    db: Database,
    admin: Caller,
    auth_stub: AuthStub,
) -> None:
    _, client = worker_app
    exam_id = await _exam(client, admin)
    await seed_students(db, ["C1", "C2"])
    only_in_auth = f"C-NEW-{uuid.uuid4().hex[:6]}"
    auth_stub.add_student(only_in_auth)
    rows = [
        _row(2, "C1", "MATH", "present", "79.5"),
        _row(3, "C1", "PHYS", "absent"),
        _row(4, "C2", "MATH", "present", 120),
        _row(5, "NOBODY", "MATH", "present", 1),
        _row(6, only_in_auth, "PHYS", "exempt"),
        _row(7, "C2", "ART", "present", 1),
    ]
    async with EventTap(worker_settings, [IMPORT_CHUNK_RESULT_TYPE, "marks.changed"]) as tap:
        chunk = _chunk(exam_id, admin, rows)
        await _send(worker_settings, chunk)
        (answer_event,) = await tap.wait_for(1, event_type=IMPORT_CHUNK_RESULT_TYPE)
        (changed,) = await tap.wait_for(1, event_type="marks.changed")

    answer = MarkImportChunkResultV1.model_validate(answer_event.data)
    assert (answer.job_id, answer.chunk_no) == (uuid.UUID(chunk["job_id"]), 0)
    assert (answer.applied, answer.rows_ok, answer.rows_unchanged, answer.rows_failed) == (
        True, 3, 0, 3,
    )  # fmt: skip
    assert [(e.row, e.column, e.code, e.value) for e in answer.errors] == [
        (4, "mark", "MARK_OUT_OF_RANGE", "120"),
        (5, "student_number", "STUDENT_NOT_FOUND", "NOBODY"),
        (7, "subject_code", "SUBJECT_NOT_FOUND", "ART"),
    ]
    assert answer.marks_version == 1
    assert answer_event.producer == "results"
    assert changed.data["source"] == "import" and changed.data["changed"] == 3
    assert await _scalar(db, "SELECT count(*) FROM results.marks") == 3
    assert (
        await _scalar(
            db,
            "SELECT count(*) FROM results.mark_audit WHERE source = 'import' AND job_id = :j "
            "AND changed_by = :u",
            j=chunk["job_id"],
            u=admin.user_id,
        )
        == 3
    )


async def test_all_or_nothing_chunk_with_a_bad_row_applies_nothing(
    worker_app: tuple[FastAPI, AsyncClient],
    worker_settings: ResultsSettings,
    db: Database,
    admin: Caller,
) -> None:
    _, client = worker_app
    exam_id = await _exam(client, admin)
    await seed_students(db, ["D1"])
    rows = [_row(2, "D1", "MATH", "present", 50), _row(3, "D1", "PHYS", "present", "12.345"),
            _row(4, "D1", "PHYS", "present", 1)]  # fmt: skip
    async with EventTap(worker_settings, [IMPORT_CHUNK_RESULT_TYPE]) as tap:
        await _send(worker_settings, _chunk(exam_id, admin, rows, mode="all_or_nothing"))
        (event,) = await tap.wait_for(1)
    answer = MarkImportChunkResultV1.model_validate(event.data)
    assert (answer.applied, answer.rows_ok, answer.rows_unchanged, answer.rows_failed) == (
        False, 1, 0, 2,
    )  # fmt: skip
    assert {(e.row, e.code) for e in answer.errors} == {
        (3, "TOO_MANY_DECIMALS"), (3, "DUPLICATE_ENTRY"), (4, "DUPLICATE_ENTRY"),
    }  # fmt: skip
    assert await _scalar(db, "SELECT count(*) FROM results.marks") == 0
    assert await _scalar(db, "SELECT count(*) FROM results.mark_audit") == 0
    assert await _scalar(db, "SELECT marks_version FROM results.exams") == 0


async def test_dry_run_validates_and_counts_but_writes_nothing(
    worker_app: tuple[FastAPI, AsyncClient],
    worker_settings: ResultsSettings,
    db: Database,
    admin: Caller,
) -> None:
    _, client = worker_app
    exam_id = await _exam(client, admin)
    await seed_students(db, ["DR1", "DR2"])
    put = await client.put(
        f"/api/v1/exams/{exam_id}/marks",
        json={"marks": [{"student_number": "DR1", "subject_code": "MATH", "status": "present",
                         "mark": 40}]},
        headers=admin.headers,
    )  # fmt: skip
    assert put.status_code == 200
    rows = [_row(2, "DR1", "MATH", "present", 40), _row(3, "DR2", "MATH", "present", 41),
            _row(4, "DR2", "PHYS", "present", 51)]  # fmt: skip
    async with EventTap(worker_settings, [IMPORT_CHUNK_RESULT_TYPE]) as tap:
        await _send(worker_settings, _chunk(exam_id, admin, rows, dry_run=True))
        (event,) = await tap.wait_for(1)
    answer = MarkImportChunkResultV1.model_validate(event.data)
    assert (answer.dry_run, answer.applied) == (True, False)
    assert (answer.rows_ok, answer.rows_unchanged, answer.rows_failed) == (1, 1, 1)
    assert await _scalar(db, "SELECT count(*) FROM results.marks") == 1
    assert await _scalar(db, "SELECT marks_version FROM results.exams") == 1


async def test_a_redelivered_or_resent_chunk_is_applied_once_and_answered_the_same(
    worker_app: tuple[FastAPI, AsyncClient],
    worker_settings: ResultsSettings,
    db: Database,
    admin: Caller,
) -> None:
    _, client = worker_app
    exam_id = await _exam(client, admin)
    await seed_students(db, ["RD1"])
    chunk = _chunk(exam_id, admin, [_row(2, "RD1", "MATH", "present", 70)], chunk_no=3)
    async with EventTap(worker_settings, [IMPORT_CHUNK_RESULT_TYPE]) as tap:
        message_id = await _send(worker_settings, chunk)
        await tap.wait_for(1)
        # The broker redelivers the same message: the inbox drops it silently.
        await _send(worker_settings, chunk, message_id=message_id)
        # bulk re-sends the chunk as a new message: not applied again, answered again.
        await _send(worker_settings, chunk)
        first, second = await tap.wait_for(2)
        assert len(tap.received) == 2
    assert first.data == second.data
    assert first.data["rows_ok"] == 1 and first.data["chunk_no"] == 3
    assert await _scalar(db, "SELECT count(*) FROM results.mark_audit") == 1
    assert await _scalar(db, "SELECT marks_version FROM results.exams") == 1
    assert await _scalar(db, "SELECT count(*) FROM results.processed_chunks") == 1


async def test_chunk_for_an_unknown_exam_or_a_forbidden_requester_is_refused_in_the_answer(
    worker_app: tuple[FastAPI, AsyncClient],
    worker_settings: ResultsSettings,
    db: Database,
    admin: Caller,
    examiner: Caller,
    student: Caller,
) -> None:
    _, client = worker_app
    body = exam_payload()
    body["subjects"][0]["examiner_ids"] = [str(uuid.uuid4())]
    response = await client.post("/api/v1/exams", json=body, headers=admin.headers)
    exam_id = str(response.json()["id"])
    await seed_students(db, ["F1"])
    rows = [_row(2, "F1", "MATH", "present", 1), _row(3, "F1", "PHYS", "present", 1)]
    async with EventTap(worker_settings, [IMPORT_CHUNK_RESULT_TYPE]) as tap:
        await _send(worker_settings, _chunk(str(uuid.uuid4()), admin, rows))
        await _send(worker_settings, _chunk(exam_id, examiner, rows))
        events = await tap.wait_for(2)
    codes = sorted(e.data["errors"][0]["code"] for e in events)
    assert codes == ["FORBIDDEN", "NOT_FOUND"]
    assert all(e.data["rows_failed"] == 2 and not e.data["applied"] for e in events)
    assert await _scalar(db, "SELECT count(*) FROM results.marks") == 0
