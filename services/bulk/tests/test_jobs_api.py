"""``/api/v1/jobs`` in-process: who sees a job, listing and paging, cancelling, the
errors file and the export download."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

import pytest
from bulk_support import (
    Caller,
    ResultsStub,
    csv_bytes,
    execute,
    outbox_of,
    rows,
)
from httpx import AsyncClient
from service_kit.db import Database

CSV = {"Content-Type": "text/csv"}
MARKS = csv_bytes([("student_number", "subject_code", "mark"), ("S-1", "MATH", 50)])
USERS = csv_bytes(
    [("email", "full_name", "role", "student_number"), ("a@x.edu", "A", "student", "S-1")]
)


@pytest.fixture
def exam_id(results_stub: ResultsStub) -> uuid.UUID:
    return results_stub.add_exam()


async def marks_job(client: AsyncClient, who: Caller, exam_id: uuid.UUID, query: str = "") -> Any:
    response = await client.post(
        f"/api/v1/exams/{exam_id}/imports{query}", content=MARKS, headers={**who.headers, **CSV}
    )
    assert response.status_code == 202, response.text
    return response.json()


async def export_job(client: AsyncClient, who: Caller, exam_id: uuid.UUID) -> Any:
    response = await client.post(f"/api/v1/exams/{exam_id}/exports", headers=who.headers)
    assert response.status_code == 202, response.text
    return response.json()


async def test_another_examiners_job_is_404_on_every_route(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    other_examiner: Caller,
    exam_id: uuid.UUID,
) -> None:
    job = await marks_job(client, examiner, exam_id)
    base = f"/api/v1/jobs/{job['id']}"
    for method, path in (
        ("GET", base),
        ("POST", base + "/cancel"),
        ("GET", base + "/errors"),
        ("GET", base + "/download"),
    ):
        response = await client.request(method, path, headers=other_examiner.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "NOT_FOUND"
    listed = await client.get("/api/v1/jobs", headers=other_examiner.headers)
    assert listed.json()["items"] == []
    # The refused cancel changed nothing.
    assert (await rows(db, "SELECT cancel_requested, status FROM bulk.jobs"))[0][
        "status"
    ] == "queued"
    mine = await client.get(base, headers=examiner.headers)
    assert mine.status_code == 200 and mine.json()["id"] == job["id"]


async def test_unknown_job_is_404(client: AsyncClient, examiner: Caller) -> None:
    response = await client.get(f"/api/v1/jobs/{uuid.uuid4()}", headers=examiner.headers)
    assert response.status_code == 404


async def test_admin_sees_every_job(
    client: AsyncClient,
    admin: Caller,
    examiner: Caller,
    other_examiner: Caller,
    exam_id: uuid.UUID,
) -> None:
    a = await marks_job(client, examiner, exam_id)
    b = await marks_job(client, other_examiner, exam_id)
    listed = await client.get("/api/v1/jobs", headers=admin.headers)
    assert listed.status_code == 200
    assert {j["id"] for j in listed.json()["items"]} == {a["id"], b["id"]}
    for job in (a, b):
        response = await client.get(f"/api/v1/jobs/{job['id']}", headers=admin.headers)
        assert response.status_code == 200
        errors = await client.get(f"/api/v1/jobs/{job['id']}/errors", headers=admin.headers)
        assert errors.status_code == 200
    mine = await client.get("/api/v1/jobs", headers=examiner.headers)
    assert [j["id"] for j in mine.json()["items"]] == [a["id"]]


async def test_list_filters_by_kind_and_status(
    client: AsyncClient, admin: Caller, exam_id: uuid.UUID
) -> None:
    marks = await marks_job(client, admin, exam_id)
    export = await export_job(client, admin, exam_id)
    users = await client.post(
        "/api/v1/users/imports", content=USERS, headers={**admin.headers, **CSV}
    )
    assert users.status_code == 202
    cancelled = await client.post(f"/api/v1/jobs/{marks['id']}/cancel", headers=admin.headers)
    assert cancelled.status_code == 202

    async def ids(query: str) -> set[str]:
        response = await client.get(f"/api/v1/jobs{query}", headers=admin.headers)
        assert response.status_code == 200, response.text
        return {j["id"] for j in response.json()["items"]}

    assert await ids("?kind=results_export") == {export["id"]}
    assert await ids("?kind=users_import") == {users.json()["id"]}
    assert await ids("?status=cancelled") == {marks["id"]}
    assert await ids("?status=queued") == {export["id"], users.json()["id"]}
    assert await ids("?kind=marks_import&status=queued") == set()
    bad = await client.get("/api/v1/jobs?kind=nope", headers=admin.headers)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BAD_REQUEST"


async def test_list_pages_newest_first_without_duplicates(
    client: AsyncClient, examiner: Caller, other_examiner: Caller, exam_id: uuid.UUID
) -> None:
    created = [(await marks_job(client, examiner, exam_id))["id"] for _ in range(5)]
    await marks_job(client, other_examiner, exam_id)  # never in examiner's pages
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(f"/api/v1/jobs{query}", headers=examiner.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["items"]) <= 2
        seen += [j["id"] for j in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert pages == 3
    assert seen == list(reversed(created))


async def test_a_cursor_of_another_listing_is_refused(
    client: AsyncClient, examiner: Caller, admin: Caller, exam_id: uuid.UUID
) -> None:
    for _ in range(3):
        await marks_job(client, examiner, exam_id)
    first = await client.get("/api/v1/jobs?limit=1", headers=examiner.headers)
    cursor = first.json()["next_cursor"]
    assert cursor
    other = await client.get(
        f"/api/v1/jobs?limit=1&kind=results_export&cursor={cursor}", headers=examiner.headers
    )
    assert other.status_code in (400, 422), other.text


async def test_cancel_a_queued_job_ends_it_at_once(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    job = await marks_job(client, examiner, exam_id)
    response = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=examiner.headers)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["finished_at"] is not None
    assert body["progress"] == 1
    read = await client.get(f"/api/v1/jobs/{job['id']}", headers=examiner.headers)
    assert read.json()["status"] == "cancelled"
    completed = await outbox_of(db, "bulk.job.completed", uuid.UUID(job["id"]))
    assert len(completed) == 1
    assert completed[0]["status"] == "cancelled"
    assert completed[0]["created_by"] == str(examiner.user_id)

    again = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=examiner.headers)
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "CONFLICT"
    assert len(await outbox_of(db, "bulk.job.completed", uuid.UUID(job["id"]))) == 1


async def test_cancel_a_running_job_asks_it_to_stop(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    job = await marks_job(client, examiner, exam_id)
    await execute(
        db,
        "UPDATE bulk.jobs SET status = 'running', stage = 'applying', chunks_total = 3, "
        "chunks_sent = 1 WHERE id = :j",
        j=uuid.UUID(job["id"]),
    )
    response = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=examiner.headers)
    assert response.status_code == 202
    assert response.json()["status"] == "running"
    found = await rows(db, "SELECT cancel_requested FROM bulk.jobs")
    assert found[0]["cancel_requested"] is True
    assert await outbox_of(db, "bulk.job.completed", uuid.UUID(job["id"])) == []


async def test_cancel_an_applying_all_or_nothing_job_is_409(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    job = await marks_job(client, examiner, exam_id, "?mode=all_or_nothing")
    await execute(
        db,
        "UPDATE bulk.jobs SET status = 'running', stage = 'applying', chunks_total = 3, "
        "chunks_sent = 1 WHERE id = :j",
        j=uuid.UUID(job["id"]),
    )
    response = await client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=examiner.headers)
    assert response.status_code == 409
    found = await rows(db, "SELECT cancel_requested FROM bulk.jobs")
    assert found[0]["cancel_requested"] is False


async def test_download_of_an_unfinished_export_is_409(
    client: AsyncClient, examiner: Caller, exam_id: uuid.UUID
) -> None:
    job = await export_job(client, examiner, exam_id)
    response = await client.get(f"/api/v1/jobs/{job['id']}/download", headers=examiner.headers)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "CONFLICT"
    imported = await marks_job(client, examiner, exam_id)
    response = await client.get(f"/api/v1/jobs/{imported['id']}/download", headers=examiner.headers)
    assert response.status_code == 409


async def test_download_streams_the_stored_parts_until_purged(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    job = await export_job(client, examiner, exam_id)
    job_id = uuid.UUID(job["id"])
    parts = [b"\xef\xbb\xbfstudent_number,total\r\n", b"S-1,10.00\r\n"]
    for no, data in enumerate(parts):
        await execute(
            db,
            "INSERT INTO bulk.job_files (job_id, role, part_no, data) "
            "VALUES (:j, 'export', :n, :d)",
            j=job_id,
            n=no,
            d=data,
        )
    await execute(
        db,
        "UPDATE bulk.jobs SET status = 'succeeded', stage = 'done', finished_at = now(), "
        "file_name = 'results-X.csv', file_bytes = :size WHERE id = :j",
        j=job_id,
        size=sum(map(len, parts)),
    )
    response = await client.get(f"/api/v1/jobs/{job_id}/download", headers=examiner.headers)
    assert response.status_code == 200, response.text
    assert response.content == b"".join(parts)
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="results-X.csv"' in response.headers["content-disposition"]
    await execute(db, "UPDATE bulk.jobs SET files_purged_at = now() WHERE id = :j", j=job_id)
    purged = await client.get(f"/api/v1/jobs/{job_id}/download", headers=examiner.headers)
    assert purged.status_code == 409


async def test_errors_file_is_formula_safe_csv_in_row_order(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    job = await marks_job(client, examiner, exam_id)
    job_id = uuid.UUID(job["id"])
    errors = [
        (5, "mark", "NOT_A_NUMBER", "Not a number.", '=HYPERLINK("http://x")'),
        (2, "student_number", "STUDENT_NOT_FOUND", "No such student.", "+44 1234"),
        (3, "mark", "NOT_A_NUMBER", "Not a number.", "-2+3"),
        (4, "mark", "NOT_A_NUMBER", 'Not, a "number".', "@SUM(A1)"),
        (6, "subject_code", "SUBJECT_NOT_FOUND", "No such subject.", "PHYS"),
    ]
    for row_no, column, code, message, value in errors:
        await execute(
            db,
            "INSERT INTO bulk.job_errors (job_id, row_no, column_name, code, message, value) "
            "VALUES (:j, :r, :c, :k, :m, :v)",
            j=job_id,
            r=row_no,
            c=column,
            k=code,
            m=message,
            v=value,
        )
    response = await client.get(f"/api/v1/jobs/{job_id}/errors", headers=examiner.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeffrow,column,code,message,value\r\n")
    parsed = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert parsed[0] == ["row", "column", "code", "message", "value"]
    assert parsed[1:] == [
        ["2", "student_number", "STUDENT_NOT_FOUND", "No such student.", "'+44 1234"],
        ["3", "mark", "NOT_A_NUMBER", "Not a number.", "'-2+3"],
        ["4", "mark", "NOT_A_NUMBER", 'Not, a "number".', "'@SUM(A1)"],
        ["5", "mark", "NOT_A_NUMBER", "Not a number.", '\'=HYPERLINK("http://x")'],
        ["6", "subject_code", "SUBJECT_NOT_FOUND", "No such subject.", "PHYS"],
    ]


async def test_errors_file_of_a_job_without_errors_is_the_header(
    client: AsyncClient, examiner: Caller, exam_id: uuid.UUID
) -> None:
    job = await marks_job(client, examiner, exam_id)
    response = await client.get(f"/api/v1/jobs/{job['id']}/errors", headers=examiner.headers)
    assert response.status_code == 200
    assert response.content == "\ufeffrow,column,code,message,value\r\n".encode()


async def test_jobs_need_a_token(client: AsyncClient) -> None:
    response = await client.get("/api/v1/jobs")
    assert response.status_code == 401


async def test_pages_of_jobs_created_at_the_same_instant(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    created = {(await marks_job(client, examiner, exam_id))["id"] for _ in range(5)}
    await execute(db, "UPDATE bulk.jobs SET created_at = '2026-12-01T10:00:00.123456+00'")
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = (await client.get(f"/api/v1/jobs{query}", headers=examiner.headers)).json()
        seen += [j["id"] for j in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and set(seen) == created
    assert seen == sorted(seen, reverse=True)  # ties broken by id, descending


async def test_errors_file_pages_through_every_error_once(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    job = await marks_job(client, examiner, exam_id)
    # 12,003 errors, three per row, written out of row order: more than two read batches.
    await execute(
        db,
        "INSERT INTO bulk.job_errors (job_id, row_no, column_name, code, message, value) "
        "SELECT :j, 2 + (g % 4001), 'c' || (g / 4001), 'NOT_A_NUMBER', 'm', 'v' || g "
        "FROM generate_series(12002, 0, -1) g",
        j=uuid.UUID(job["id"]),
    )
    response = await client.get(f"/api/v1/jobs/{job['id']}/errors", headers=examiner.headers)
    assert response.status_code == 200
    lines = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    body = lines[1:]
    assert len(body) == 12003
    assert len({line[4] for line in body}) == 12003
    row_numbers = [int(line[0]) for line in body]
    assert row_numbers == sorted(row_numbers)
    assert row_numbers[:3] == [2, 2, 2] and row_numbers[-1] == 4002
