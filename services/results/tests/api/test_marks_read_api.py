"""GET /exams/{id}/marks and /marks/audit: filters, cursor pagination, roles."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from results_support import Caller, exam_payload, present, seed_students
from service_kit.db import Database


async def _exam_with_marks(client: AsyncClient, admin: Caller, db: Database) -> str:
    response = await client.post("/api/v1/exams", json=exam_payload(), headers=admin.headers)
    exam_id = str(response.json()["id"])
    numbers = [f"R{i}" for i in range(7)]
    await seed_students(db, numbers)
    marks = [present(n, s, 10 + i) for i, n in enumerate(numbers) for s in ("MATH", "PHYS")]
    written = await client.put(
        f"/api/v1/exams/{exam_id}/marks", json={"marks": marks}, headers=admin.headers
    )
    assert written.json() == {"written": 14, "unchanged": 0}
    return exam_id


async def _all_pages(client: AsyncClient, url: str, who: Caller, **params: object) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        query = dict(params) | ({"cursor": cursor} if cursor else {})
        response = await client.get(url, params=query, headers=who.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


async def test_marks_list_pages_through_every_entry_once(
    client: AsyncClient, admin: Caller, examiner: Caller, db: Database
) -> None:
    exam_id = await _exam_with_marks(client, admin, db)
    items = await _all_pages(client, f"/api/v1/exams/{exam_id}/marks", examiner, limit=3)
    assert len(items) == 14
    assert len({(i["student_number"], i["subject_code"]) for i in items}) == 14
    first = next(i for i in items if i["student_number"] == "R3" and i["subject_code"] == "PHYS")
    assert set(first) == {
        "student_number", "subject_code", "status", "mark", "updated_at", "updated_by",
    }  # fmt: skip
    assert (first["status"], first["mark"], first["updated_by"]) == (
        "present", 13, str(admin.user_id),
    )  # fmt: skip


async def test_marks_list_filters_by_subject_and_student(
    client: AsyncClient, admin: Caller, db: Database
) -> None:
    exam_id = await _exam_with_marks(client, admin, db)
    url = f"/api/v1/exams/{exam_id}/marks"
    physics = await _all_pages(client, url, admin, subject_code="PHYS", limit=2)
    assert sorted(i["student_number"] for i in physics) == [f"R{i}" for i in range(7)]
    assert {i["subject_code"] for i in physics} == {"PHYS"}
    one = await _all_pages(client, url, admin, student_number="R2")
    assert sorted(i["subject_code"] for i in one) == ["MATH", "PHYS"]
    both = await _all_pages(client, url, admin, student_number="R2", subject_code="MATH")
    assert [(i["student_number"], i["mark"]) for i in both] == [("R2", 12)]
    assert await _all_pages(client, url, admin, student_number="NOPE") == []


async def test_marks_list_refuses_students_bad_cursors_and_unknown_exams(
    client: AsyncClient, admin: Caller, student: Caller, db: Database
) -> None:
    exam_id = await _exam_with_marks(client, admin, db)
    url = f"/api/v1/exams/{exam_id}/marks"
    assert (await client.get(url, headers=student.headers)).status_code == 403
    for cursor in ("%%%", "WzFd", "WyJ4IiwgMV0"):
        response = await client.get(url, params={"cursor": cursor}, headers=admin.headers)
        assert response.status_code == 400, cursor
    response = await client.get(f"/api/v1/exams/{uuid.uuid4()}/marks", headers=admin.headers)
    assert response.status_code == 404


async def test_audit_is_admin_only_newest_first_and_filterable(
    client: AsyncClient, admin: Caller, examiner: Caller, db: Database
) -> None:
    exam_id = await _exam_with_marks(client, admin, db)
    url = f"/api/v1/exams/{exam_id}/marks"
    await client.put(
        url, json={"marks": [present("R1", "MATH", 99)], "reason": "recheck"}, headers=admin.headers
    )
    assert (await client.get(f"{url}/audit", headers=examiner.headers)).status_code == 403
    entries = await _all_pages(client, f"{url}/audit", admin, limit=4)
    assert len(entries) == 15
    assert entries[0]["new_mark"] == 99 and entries[0]["reason"] == "recheck"
    assert [e["changed_at"] for e in entries] == sorted(
        (e["changed_at"] for e in entries), reverse=True
    )
    r1 = await _all_pages(client, f"{url}/audit", admin, student_number="R1")
    changes = [(e["subject_code"], e["old_mark"], e["new_mark"]) for e in r1]
    assert changes[0] == ("MATH", 11, 99)
    assert sorted(changes[1:]) == [("MATH", None, 11), ("PHYS", None, 11)]
    response = await client.get(f"{url}/audit", params={"cursor": "WyJ4Il0"}, headers=admin.headers)
    assert response.status_code == 400
