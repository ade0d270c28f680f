"""PATCH /exams/{id}: before publication only; definition changes make results stale."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from results_support import Caller, exam_payload, present, seed_students
from service_kit.db import Database
from sqlalchemy import text


async def _exam(client: AsyncClient, admin: Caller, **overrides: object) -> dict:
    response = await client.post(
        "/api/v1/exams", json=exam_payload(**overrides), headers=admin.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _versions(db: Database, exam_id: str) -> tuple[int, int | None]:
    async with db.read_session() as session:
        row = (
            await session.execute(
                text("SELECT marks_version, results_version FROM results.exams WHERE id = :id"),
                {"id": exam_id},
            )
        ).one()
    return row.marks_version, row.results_version


async def _mark_results_fresh(db: Database, exam_id: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            text(
                "UPDATE results.exams SET results_version = marks_version, "
                "results_generated_at = now() WHERE id = :id"
            ),
            {"id": exam_id},
        )


async def _outbox_types(db: Database) -> list[str]:
    async with db.read_session() as session:
        rows = await session.execute(text("SELECT type FROM results.outbox ORDER BY created_at"))
    return [r.type for r in rows]


async def test_label_changes_do_not_make_results_stale(
    client: AsyncClient, admin: Caller, db: Database
) -> None:
    exam = await _exam(client, admin)
    await _mark_results_fresh(db, exam["id"])
    response = await client.patch(
        f"/api/v1/exams/{exam['id']}",
        json={"name": "Finals (resit)", "term": "2026 autumn", "code": "RESIT-1"},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert (patched["name"], patched["term"], patched["code"]) == (
        "Finals (resit)", "2026 autumn", "RESIT-1",
    )  # fmt: skip
    assert patched["results_stale"] is False
    assert await _outbox_types(db) == []


async def test_definition_change_bumps_marks_version_and_asks_for_regeneration(
    client: AsyncClient, admin: Caller, db: Database
) -> None:
    exam = await _exam(client, admin)
    await _mark_results_fresh(db, exam["id"])
    before, _ = await _versions(db, exam["id"])
    scale = [
        {"grade": "P", "min_percent": 50, "points": 1},
        {"grade": "F", "min_percent": 0, "points": 0},
    ]
    response = await client.patch(
        f"/api/v1/exams/{exam['id']}",
        json={"grading_scale": scale, "rank_method": "dense"},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["results_stale"] is True
    assert patched["rank_method"] == "dense"
    assert [b["grade"] for b in patched["grading_scale"]] == ["P", "F"]
    after, _ = await _versions(db, exam["id"])
    assert after == before + 1
    async with db.read_session() as session:
        payload = (await session.execute(text("SELECT payload FROM results.outbox"))).scalar_one()
    assert payload == {
        "exam_id": exam["id"],
        "marks_version": after,
        "cause": "definition",
        "source": None,
        "changed": 0,
        "exam_published": False,
    }


async def test_subjects_are_replaced_and_reordered(client: AsyncClient, admin: Caller) -> None:
    exam = await _exam(client, admin)
    subjects = [
        {"code": "PHYS", "name": "Physics", "max_mark": 60, "pass_mark": 20},
        {"code": "CHEM", "name": "Chemistry", "max_mark": 80, "pass_mark": 30, "credits": 1.5},
    ]
    response = await client.patch(
        f"/api/v1/exams/{exam['id']}", json={"subjects": subjects}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    assert [(s["code"], s["max_mark"], s["credits"]) for s in response.json()["subjects"]] == [
        ("PHYS", 60, 1),
        ("CHEM", 80, 1.5),
    ]


async def test_subject_with_marks_cannot_be_removed_or_shrunk_below_a_mark(
    client: AsyncClient, admin: Caller, db: Database
) -> None:
    exam = await _exam(client, admin)
    await seed_students(db, ["P-1"])
    written = await client.put(
        f"/api/v1/exams/{exam['id']}/marks",
        json={"marks": [present("P-1", "MATH", 90)]},
        headers=admin.headers,
    )
    assert written.status_code == 200, written.text
    response = await client.patch(
        f"/api/v1/exams/{exam['id']}",
        json={"subjects": [{"code": "PHYS", "name": "Physics", "max_mark": 50, "pass_mark": 20}]},
        headers=admin.headers,
    )
    assert response.status_code == 422
    assert [(d["field"], d["code"]) for d in response.json()["error"]["details"]] == [
        ("subjects", "SUBJECT_HAS_MARKS")
    ]
    response = await client.patch(
        f"/api/v1/exams/{exam['id']}",
        json={"subjects": [{"code": "MATH", "name": "Maths", "max_mark": 80, "pass_mark": 20}]},
        headers=admin.headers,
    )
    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert ("subjects[0].max_mark", "MARKS_ABOVE_MAX_MARK") in {
        (d["field"], d["code"]) for d in details
    }


async def test_patch_validates_like_create_and_refuses_nulls(
    client: AsyncClient, admin: Caller
) -> None:
    exam = await _exam(client, admin)
    url = f"/api/v1/exams/{exam['id']}"
    response = await client.patch(url, json={"pass_percent": 100.5}, headers=admin.headers)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "pass_percent"
    response = await client.patch(url, json={"name": None, "subjects": None}, headers=admin.headers)
    assert response.status_code == 422
    assert {d["field"] for d in response.json()["error"]["details"]} == {"name", "subjects"}
    response = await client.patch(url, json={"status": "published"}, headers=admin.headers)
    assert response.status_code == 422


async def test_patch_to_a_taken_code_is_a_conflict(client: AsyncClient, admin: Caller) -> None:
    await _exam(client, admin, code="TAKEN-1")
    exam = await _exam(client, admin)
    response = await client.patch(
        f"/api/v1/exams/{exam['id']}", json={"code": "taken-1"}, headers=admin.headers
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "EXAM_CODE_TAKEN"


async def test_patch_after_publication_is_refused(
    client: AsyncClient, admin: Caller, db: Database
) -> None:
    exam = await _exam(client, admin)
    async with db.transaction() as session:
        await session.execute(
            text(
                "UPDATE results.exams SET status = 'published', published_at = now() WHERE id = :id"
            ),
            {"id": exam["id"]},
        )
    response = await client.patch(
        f"/api/v1/exams/{exam['id']}", json={"name": "Late"}, headers=admin.headers
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "EXAM_PUBLISHED"


async def test_scheduled_exam_can_be_patched_and_keeps_its_schedule(
    client: AsyncClient, admin: Caller, db: Database
) -> None:
    exam = await _exam(client, admin)
    async with db.transaction() as session:
        await session.execute(
            text(
                "UPDATE results.exams SET status = 'scheduled', "
                "publish_at = now() + interval '1 day' WHERE id = :id"
            ),
            {"id": exam["id"]},
        )
    response = await client.patch(
        f"/api/v1/exams/{exam['id']}", json={"pass_percent": 50}, headers=admin.headers
    )
    assert response.status_code == 200
    assert response.json()["status"] == "scheduled"
    assert response.json()["publish_at"] is not None
    assert response.json()["results_stale"] is True


async def test_only_admins_patch_and_unknown_exam_is_404(
    client: AsyncClient, admin: Caller, examiner: Caller
) -> None:
    exam = await _exam(client, admin)
    response = await client.patch(
        f"/api/v1/exams/{exam['id']}", json={"name": "x"}, headers=examiner.headers
    )
    assert response.status_code == 403
    response = await client.patch(
        f"/api/v1/exams/{uuid.uuid4()}", json={"name": "x"}, headers=admin.headers
    )
    assert response.status_code == 404
