"""The import template and creating exports through the API in-process."""

from __future__ import annotations

import io
import uuid

import pytest
from bulk_support import Caller, ResultsStub, count_jobs, outbox_of
from httpx import AsyncClient
from service_kit.db import Database


@pytest.fixture
def exam_id(results_stub: ResultsStub) -> uuid.UUID:
    return results_stub.add_exam((("MATH", 100), ("PHYS", 50), ("CHEM", 80)))


async def test_long_csv_template(
    client: AsyncClient, examiner: Caller, exam_id: uuid.UUID, results_stub: ResultsStub
) -> None:
    response = await client.get(
        f"/api/v1/exams/{exam_id}/imports/template", headers=examiner.headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.content.decode("utf-8-sig").splitlines() == ["student_number,subject_code,mark"]
    code = results_stub.exams[exam_id]["code"]
    assert f'filename="marks-{code}-long.csv"' in response.headers["content-disposition"]


async def test_wide_xlsx_template_has_the_subjects_in_exam_order(
    client: AsyncClient, examiner: Caller, exam_id: uuid.UUID
) -> None:
    from openpyxl import load_workbook

    response = await client.get(
        f"/api/v1/exams/{exam_id}/imports/template?shape=wide&format=xlsx",
        headers=examiner.headers,
    )
    assert response.status_code == 200, response.text
    book = load_workbook(io.BytesIO(response.content), read_only=True)
    header = next(book.worksheets[0].iter_rows(values_only=True))
    assert list(header) == ["student_number", "MATH", "PHYS", "CHEM"]


async def test_template_of_an_unknown_exam_is_404_and_results_down_503(
    client: AsyncClient, examiner: Caller, results_stub: ResultsStub, exam_id: uuid.UUID
) -> None:
    unknown = await client.get(
        f"/api/v1/exams/{uuid.uuid4()}/imports/template", headers=examiner.headers
    )
    assert unknown.status_code == 404
    results_stub.failing = True
    down = await client.get(f"/api/v1/exams/{exam_id}/imports/template", headers=examiner.headers)
    assert down.status_code == 503
    assert down.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"


async def test_template_is_for_staff(
    client: AsyncClient, student: Caller, exam_id: uuid.UUID
) -> None:
    response = await client.get(
        f"/api/v1/exams/{exam_id}/imports/template", headers=student.headers
    )
    assert response.status_code == 403


async def test_export_job_is_queued_with_its_command(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    response = await client.post(
        f"/api/v1/exams/{exam_id}/exports?format=xlsx", headers=examiner.headers
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["kind"], job["format"], job["status"]) == ("results_export", "xlsx", "queued")
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    commands = await outbox_of(db, "bulk.job.requested", uuid.UUID(job["id"]))
    assert commands == [{"job_id": job["id"], "kind": "results_export"}]


async def test_export_idempotency_unknown_exam_and_roles(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    student: Caller,
    exam_id: uuid.UUID,
) -> None:
    headers = {**examiner.headers, "Idempotency-Key": "exp-1"}
    first = await client.post(f"/api/v1/exams/{exam_id}/exports", headers=headers)
    second = await client.post(f"/api/v1/exams/{exam_id}/exports", headers=headers)
    assert first.json()["id"] == second.json()["id"]
    assert await count_jobs(db) == 1
    unknown = await client.post(f"/api/v1/exams/{uuid.uuid4()}/exports", headers=examiner.headers)
    assert unknown.status_code == 404
    refused = await client.post(f"/api/v1/exams/{exam_id}/exports", headers=student.headers)
    assert refused.status_code == 403
    assert await count_jobs(db) == 1
