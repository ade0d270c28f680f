"""Exams over HTTP: create, list, read, patch (API.md "Exams, marks and results")."""

from __future__ import annotations

import asyncio
import uuid

from httpx import AsyncClient
from results_support import Caller, exam_payload


async def _create(client: AsyncClient, admin: Caller, **overrides: object) -> dict:
    response = await client.post(
        "/api/v1/exams", json=exam_payload(**overrides), headers=admin.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_admin_creates_a_draft_exam_with_every_field_of_the_contract(
    client: AsyncClient, admin: Caller
) -> None:
    examiner_id = str(uuid.uuid4())
    body = exam_payload(code="FIN-2026")
    body["subjects"][0]["examiner_ids"] = [examiner_id]
    body["subjects"][1]["max_mark"] = 50.5
    response = await client.post("/api/v1/exams", json=body, headers=admin.headers)

    assert response.status_code == 201, response.text
    exam = response.json()
    assert set(exam) >= {
        "id", "code", "name", "term", "status", "publish_at", "published_at", "subjects",
        "grading_scale", "pass_percent", "rank_method", "results_stale",
        "results_generated_at", "created_at",
    }  # fmt: skip
    assert exam["status"] == "draft"
    assert exam["code"] == "FIN-2026"
    assert exam["publish_at"] is None and exam["published_at"] is None
    assert exam["results_stale"] is True  # never generated counts as stale
    assert exam["results_generated_at"] is None
    assert exam["subjects"][0] == {
        "code": "MATH", "name": "Mathematics", "max_mark": 100, "pass_mark": 40, "credits": 2,
        "examiner_ids": [examiner_id],
    }  # fmt: skip
    assert exam["subjects"][1]["max_mark"] == 50.5
    assert exam["subjects"][1]["examiner_ids"] == []
    assert [b["grade"] for b in exam["grading_scale"]] == ["A", "B", "C", "F"]
    assert exam["grading_scale"][0] == {"grade": "A", "min_percent": 80, "points": 4}
    assert exam["pass_percent"] == 40
    assert exam["rank_method"] == "competition"
    # Numbers are JSON numbers, never strings.
    assert '"max_mark":100' in response.text.replace(" ", "").replace(".0", "")


async def test_exam_code_is_unique_case_insensitively(client: AsyncClient, admin: Caller) -> None:
    await _create(client, admin, code="DUP-1")
    response = await client.post(
        "/api/v1/exams", json=exam_payload(code="dup-1"), headers=admin.headers
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "EXAM_CODE_TAKEN"


async def test_concurrent_creations_of_one_code_give_exactly_one_exam(
    client: AsyncClient, admin: Caller
) -> None:
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/exams", json=exam_payload(code="RACE-1"), headers=admin.headers)
            for _ in range(8)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 7
    assert all(
        r.json()["error"]["code"] == "EXAM_CODE_TAKEN" for r in responses if r.status_code == 409
    )


async def test_invalid_definition_lists_every_problem_with_its_field(
    client: AsyncClient, admin: Caller
) -> None:
    body = exam_payload(
        subjects=[
            {"code": "MATH", "name": "Maths", "max_mark": 100, "pass_mark": 40},
            {"code": "MATH", "name": "Again", "max_mark": 0, "pass_mark": 120.5},
            {"code": "BIO", "name": "Bio", "max_mark": 10.123, "pass_mark": 1, "credits": 0},
        ],
        grading_scale=[
            {"grade": "A", "min_percent": 80, "points": 4},
            {"grade": "B", "min_percent": 80, "points": -1},
            {"grade": "C", "min_percent": 140.555, "points": 1},
        ],
        pass_percent=101,
    )
    response = await client.post("/api/v1/exams", json=body, headers=admin.headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_FAILED"
    found = {(d["field"], d["code"]) for d in error["details"]}
    assert found == {
        ("subjects[1].max_mark", "MAX_MARK_NOT_POSITIVE"),
        ("subjects[1].pass_mark", "PASS_MARK_OUT_OF_RANGE"),
        ("subjects[1].code", "DUPLICATE_SUBJECT_CODE"),
        ("subjects[2].max_mark", "TOO_MANY_DECIMALS"),
        ("subjects[2].credits", "CREDITS_NOT_POSITIVE"),
        ("grading_scale[1].min_percent", "DUPLICATE_BAND"),
        ("grading_scale[1].points", "POINTS_NEGATIVE"),
        ("grading_scale[2].min_percent", "MIN_PERCENT_OUT_OF_RANGE"),
        ("grading_scale[2].min_percent", "TOO_MANY_DECIMALS"),
        ("grading_scale", "SCALE_MISSING_ZERO_BAND"),
        ("pass_percent", "PASS_PERCENT_OUT_OF_RANGE"),
    }


async def test_exam_without_subjects_is_refused(client: AsyncClient, admin: Caller) -> None:
    response = await client.post(
        "/api/v1/exams", json=exam_payload(subjects=[]), headers=admin.headers
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0] == {
        "field": "subjects",
        "code": "NO_SUBJECTS",
        "message": "an exam needs a subject",
    }


async def test_values_too_large_for_storage_are_refused_not_failed(
    client: AsyncClient, admin: Caller
) -> None:
    body = exam_payload()
    body["subjects"][0]["max_mark"] = 1_000_000
    response = await client.post("/api/v1/exams", json=body, headers=admin.headers)
    assert response.status_code == 422
    assert {"field": "subjects[0].max_mark", "code": "VALUE_TOO_LARGE"}.items() <= (
        response.json()["error"]["details"][0].items()
    )


async def test_malformed_json_is_a_bad_request(client: AsyncClient, admin: Caller) -> None:
    response = await client.post(
        "/api/v1/exams",
        content=b'{"code": ',
        headers={**admin.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"


async def test_only_admins_create_exams(
    client: AsyncClient, examiner: Caller, student: Caller
) -> None:
    for who in (examiner, student):
        response = await client.post("/api/v1/exams", json=exam_payload(), headers=who.headers)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "FORBIDDEN"
    response = await client.post("/api/v1/exams", json=exam_payload())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTH_TOKEN_MISSING"


async def test_list_is_cursor_paginated_newest_first(
    client: AsyncClient, admin: Caller, examiner: Caller
) -> None:
    created = [(await _create(client, admin, code=f"PAGE-{i}"))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/api/v1/exams", params=params, headers=examiner.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        seen += [e["id"] for e in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))
    assert pages == 3


async def test_list_default_limit_and_bad_parameters(client: AsyncClient, admin: Caller) -> None:
    await _create(client, admin)
    response = await client.get("/api/v1/exams", headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["next_cursor"] is None
    for params in ({"limit": 0}, {"limit": 501}, {"limit": "x"}, {"cursor": "not-a-cursor"},
                   {"cursor": "WzFd"}):  # fmt: skip
        response = await client.get("/api/v1/exams", params=params, headers=admin.headers)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "BAD_REQUEST"
    response = await client.get("/api/v1/exams", params={"limit": 500}, headers=admin.headers)
    assert response.status_code == 200


async def test_students_cannot_list_exams(client: AsyncClient, student: Caller) -> None:
    response = await client.get("/api/v1/exams", headers=student.headers)
    assert response.status_code == 403


async def test_a_student_sees_an_exam_only_once_published(
    client: AsyncClient, admin: Caller, examiner: Caller, student: Caller, db
) -> None:
    exam = await _create(client, admin)
    url = f"/api/v1/exams/{exam['id']}"
    assert (await client.get(url, headers=examiner.headers)).json() == exam
    hidden = await client.get(url, headers=student.headers)
    assert hidden.status_code == 404
    assert hidden.json()["error"]["code"] == "NOT_FOUND"

    from sqlalchemy import text

    async with db.transaction() as session:
        await session.execute(
            text("UPDATE results.exams SET status='published', published_at=now() WHERE id=:id"),
            {"id": exam["id"]},
        )
    shown = await client.get(url, headers=student.headers)
    assert shown.status_code == 200
    assert shown.json()["status"] == "published"


async def test_unknown_exam_and_malformed_id_are_both_404(
    client: AsyncClient, admin: Caller
) -> None:
    response = await client.get(f"/api/v1/exams/{uuid.uuid4()}", headers=admin.headers)
    assert response.status_code == 404
    for path in ("/api/v1/exams/not-a-uuid", "/api/v1/exams/not-a-uuid/marks"):
        response = await client.get(path, headers=admin.headers)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "NOT_FOUND"
