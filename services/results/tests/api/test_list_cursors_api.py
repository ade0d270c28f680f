"""Every list refuses a cursor it did not hand out: 400 BAD_REQUEST in the envelope."""

from __future__ import annotations

from httpx import AsyncClient, Response
from results_support import Caller, exam_payload, present, seed_students
from service_kit.db import Database

GARBLED = ("not-a-cursor", "WzFd", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "x" * 600)


def _assert_bad_request(response: Response, what: object) -> None:
    assert response.status_code == 400, what
    error = response.json()["error"]
    assert error["code"] == "BAD_REQUEST", what
    assert error["message"] and error["request_id"], what


def _flipped(cursor: str) -> str:
    """The same cursor with one bit of its last full byte flipped."""
    at = len(cursor) - 2
    return cursor[:at] + ("B" if cursor[at] == "A" else "A") + cursor[at + 1 :]


async def _exam_with_marks(
    client: AsyncClient, admin: Caller, db: Database, prefix: str = "C"
) -> str:
    response = await client.post("/api/v1/exams", json=exam_payload(), headers=admin.headers)
    exam_id = str(response.json()["id"])
    numbers = [f"{prefix}{i}" for i in range(3)]
    await seed_students(db, numbers)
    marks = [present(n, s, 40) for n in numbers for s in ("MATH", "PHYS")]
    written = await client.put(
        f"/api/v1/exams/{exam_id}/marks", json={"marks": marks}, headers=admin.headers
    )
    assert written.status_code == 200, written.text
    return exam_id


async def _next_cursor(client: AsyncClient, url: str, who: Caller, **params: object) -> str:
    response = await client.get(url, params={"limit": 1, **params}, headers=who.headers)
    assert response.status_code == 200, response.text
    cursor = response.json()["next_cursor"]
    assert isinstance(cursor, str)
    return cursor


async def test_garbled_cursors_are_bad_requests_on_every_list(
    client: AsyncClient, admin: Caller, student: Caller, db: Database
) -> None:
    exam_id = await _exam_with_marks(client, admin, db)
    lists = [
        ("/api/v1/exams", admin),
        (f"/api/v1/exams/{exam_id}/marks", admin),
        (f"/api/v1/exams/{exam_id}/marks/audit", admin),
        (f"/api/v1/exams/{exam_id}/results", admin),
        ("/api/v1/me/results", student),
    ]
    for url, who in lists:
        for cursor in GARBLED:
            response = await client.get(url, params={"cursor": cursor}, headers=who.headers)
            _assert_bad_request(response, (url, cursor))


async def test_a_cursor_continues_only_its_own_list_and_filters(
    client: AsyncClient, admin: Caller, db: Database
) -> None:
    exam_id = await _exam_with_marks(client, admin, db)
    other_exam = await _exam_with_marks(client, admin, db, prefix="D")
    marks = f"/api/v1/exams/{exam_id}/marks"
    physics = await _next_cursor(client, marks, admin, subject_code="PHYS")
    audit = await _next_cursor(client, f"{marks}/audit", admin)
    exams = await _next_cursor(client, "/api/v1/exams", admin)

    ok = await client.get(
        marks, params={"subject_code": "PHYS", "cursor": physics}, headers=admin.headers
    )
    assert ok.status_code == 200 and ok.json()["items"][0]["subject_code"] == "PHYS"
    replays = [
        (marks, {"subject_code": "MATH", "cursor": physics}),  # other filter
        (marks, {"cursor": physics}),  # filter dropped
        (f"/api/v1/exams/{other_exam}/marks", {"subject_code": "PHYS", "cursor": physics}),
        (marks, {"cursor": audit}),  # another list of the same exam
        (marks, {"cursor": exams}),
        ("/api/v1/exams", {"cursor": audit}),
        (marks, {"subject_code": "PHYS", "cursor": _flipped(physics)}),
        ("/api/v1/exams", {"cursor": _flipped(exams)}),
    ]
    for url, params in replays:
        response = await client.get(url, params=params, headers=admin.headers)
        _assert_bad_request(response, (url, params))
