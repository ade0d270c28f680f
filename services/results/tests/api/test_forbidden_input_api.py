"""Text Postgres cannot hold, and bodies that are not JSON, are refused in the envelope.

NUL (and a lone surrogate, which has no UTF-8 form) in an exam, a mark batch or
a list filter used to reach a query and answer 500. The kit refuses them now:
422 with a ``FORBIDDEN_CHARACTER`` detail per field in a body, 400 in the query;
a JSON call given text or a form answers 415.
"""

from __future__ import annotations

import httpx
import pytest
from httpx import AsyncClient
from results_support import Caller, exam_payload, present, seed_students
from service_kit.db import Database


def _fields(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_FAILED"
    return [(d["field"], d["code"]) for d in error["details"]]


def _bad_request(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "BAD_REQUEST"


async def _exam(client: AsyncClient, admin: Caller) -> str:
    response = await client.post("/api/v1/exams", json=exam_payload(), headers=admin.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_nul_in_exam_fields_nested_ones_too_is_422_per_field(
    client: AsyncClient, admin: Caller
) -> None:
    body = exam_payload(name="Finals\x00")
    body["subjects"][1]["name"] = "Phys\x00ics"

    response = await client.post("/api/v1/exams", json=body, headers=admin.headers)

    assert _fields(response) == [
        ("name", "FORBIDDEN_CHARACTER"),
        ("subjects[1].name", "FORBIDDEN_CHARACTER"),
    ]


async def test_lone_surrogate_in_an_exam_patch_is_422(client: AsyncClient, admin: Caller) -> None:
    exam_id = await _exam(client, admin)

    response = await client.patch(
        f"/api/v1/exams/{exam_id}",
        content='{"term": "\\udc80"}',
        headers={**admin.headers, "content-type": "application/json"},
    )

    assert _fields(response) == [("term", "FORBIDDEN_CHARACTER")]


async def test_nul_in_a_mark_reason_and_entry_is_422_and_writes_nothing(
    client: AsyncClient, admin: Caller, db: Database
) -> None:
    exam_id = await _exam(client, admin)
    await seed_students(db, ["N1"])
    url = f"/api/v1/exams/{exam_id}/marks"
    marks = [present("N1", "MATH", 50), present("N1\x00", "PHYS", 10)]

    response = await client.put(
        url, json={"marks": marks, "reason": "typo\x00"}, headers=admin.headers
    )

    assert _fields(response) == [
        ("marks[1].student_number", "FORBIDDEN_CHARACTER"),
        ("reason", "FORBIDDEN_CHARACTER"),
    ]
    listed = await client.get(url, headers=admin.headers)
    assert listed.json()["items"] == []


async def test_nul_in_a_marks_filter_is_400(client: AsyncClient, admin: Caller) -> None:
    exam_id = await _exam(client, admin)

    for params in ({"subject_code": "MA\x00TH"}, {"student_number": "\x00"}):
        response = await client.get(
            f"/api/v1/exams/{exam_id}/marks", params=params, headers=admin.headers
        )
        _bad_request(response)


async def test_nul_in_a_list_cursor_is_400(client: AsyncClient, admin: Caller) -> None:
    response = await client.get("/api/v1/exams", params={"cursor": "AQ\x00"}, headers=admin.headers)

    _bad_request(response)


async def test_nul_in_an_exam_id_is_400(client: AsyncClient, admin: Caller) -> None:
    _bad_request(await client.get("/api/v1/exams/%00", headers=admin.headers))


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ('{"code": "X"}', "text/plain"),
        ("code=X&name=Finals", "application/x-www-form-urlencoded"),
    ],
)
async def test_creating_an_exam_from_a_body_that_is_not_json_is_415(
    client: AsyncClient, admin: Caller, content: str, content_type: str
) -> None:
    response = await client.post(
        "/api/v1/exams", content=content, headers={**admin.headers, "content-type": content_type}
    )

    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
