"""POST /exams/{id}/publish reads ``at`` only as RFC 3339 text and refuses unknown fields.

Both were found by schemathesis over the merged OpenAPI document: ``{"at": 60}``
was taken as 60 s after 1970, a time in the past, so the exam was published at
once instead of being refused; a misspelt field was ignored the same way.
"""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from results_support import Caller, exam_payload


async def _draft(client: AsyncClient, admin: Caller) -> str:
    response = await client.post("/api/v1/exams", json=exam_payload(), headers=admin.headers)
    assert response.status_code == 201, response.text
    exam_id: str = response.json()["id"]
    return exam_id


@pytest.mark.parametrize("at", [60, 60.0, "60", "1700000000", True])
async def test_a_publication_time_that_is_not_rfc3339_text_is_refused(
    client: AsyncClient, admin: Caller, at: object
) -> None:
    exam_id = await _draft(client, admin)
    response = await client.post(
        f"/api/v1/exams/{exam_id}/publish", json={"at": at}, headers=admin.headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "at"
    assert response.json()["error"]["details"][0]["code"] == "DATETIME_TYPE"
    exam = await client.get(f"/api/v1/exams/{exam_id}", headers=admin.headers)
    assert exam.json()["status"] == "draft"


async def test_a_misspelt_publication_field_is_refused_not_ignored(
    client: AsyncClient, admin: Caller
) -> None:
    exam_id = await _draft(client, admin)
    response = await client.post(
        f"/api/v1/exams/{exam_id}/publish",
        json={"publish_at": "2099-01-01T00:00:00Z"},
        headers=admin.headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["code"] == "EXTRA_FORBIDDEN"
    exam = await client.get(f"/api/v1/exams/{exam_id}", headers=admin.headers)
    assert exam.json()["status"] == "draft"
