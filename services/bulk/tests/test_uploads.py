"""Uploads through the API in-process: the bytes stored exactly, the limits, the types,
Idempotency-Key, the exam lookup at results, and what one request writes together."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from bulk_service.settings import BulkSettings
from bulk_support import (
    Caller,
    JwtKeys,
    ResultsStub,
    count_jobs,
    count_parts,
    csv_bytes,
    multipart,
    outbox_of,
    rows,
    stored_upload,
    xlsx_bytes,
)
from httpx import AsyncClient
from redis.asyncio import Redis
from service_kit.db import Database

CSV = {"Content-Type": "text/csv"}
SMALL = csv_bytes([("student_number", "subject_code", "mark"), ("S-1", "MATH", 50)])


def imports_url(exam_id: uuid.UUID) -> str:
    return f"/api/v1/exams/{exam_id}/imports"


def big_csv(size: int) -> bytes:
    """A CSV of about ``size`` bytes whose lines all differ (a shifted part would show)."""
    lines = [b"student_number,subject_code,mark\r\n"]
    n = 0
    total = len(lines[0])
    while total < size:
        line = f"S-{n:07d},MATH,{n % 101}\r\n".encode()
        lines.append(line)
        total += len(line)
        n += 1
    return b"".join(lines)[:size]


@pytest.fixture
def exam_id(results_stub: ResultsStub) -> uuid.UUID:
    return results_stub.add_exam()


async def test_raw_csv_body_is_stored_exactly_in_parts(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID, settings: BulkSettings
) -> None:
    body = big_csv(90 * 1024)  # two parts of 64 KiB
    response = await client.post(
        imports_url(exam_id), content=body, headers={**examiner.headers, **CSV}
    )
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["kind"] == "marks_import" and job["format"] == "csv"
    stored, parts = await stored_upload(db, uuid.UUID(job["id"]))
    assert stored == body
    assert parts == 2
    file_bytes = await rows(db, "SELECT file_bytes FROM bulk.jobs")
    assert file_bytes[0]["file_bytes"] == len(body)


async def test_multipart_file_field_is_stored_exactly(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    data = os.urandom(70 * 1024)  # arbitrary bytes, more than one part
    body, content_type = multipart(data, filename="my marks.csv")
    response = await client.post(
        imports_url(exam_id),
        content=body,
        headers={**examiner.headers, "Content-Type": content_type},
    )
    assert response.status_code == 202, response.text
    assert response.json()["file_name"] == "my marks.csv"
    stored, parts = await stored_upload(db, uuid.UUID(response.json()["id"]))
    assert stored == data
    assert parts == 2


async def test_multipart_with_other_fields_keeps_only_the_file(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    boundary = "bnd123"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + SMALL
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = await client.post(
        imports_url(exam_id),
        content=body,
        headers={**examiner.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 202, response.text
    stored, _ = await stored_upload(db, uuid.UUID(response.json()["id"]))
    assert stored == SMALL


async def test_body_over_the_limit_is_413_and_leaves_nothing(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    body = big_csv(100 * 1024 + 1)

    async def chunks() -> AsyncIterator[bytes]:
        # Streamed without Content-Length: the limit is counted while reading.
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = await client.post(
        imports_url(exam_id), content=chunks(), headers={**examiner.headers, **CSV}
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert await count_jobs(db) == 0
    assert await count_parts(db) == 0


async def test_multipart_over_the_limit_is_413_and_leaves_nothing(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    body, content_type = multipart(os.urandom(100 * 1024 + 10))

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = await client.post(
        imports_url(exam_id),
        content=chunks(),
        headers={**examiner.headers, "Content-Type": content_type},
    )
    assert response.status_code == 413, response.text
    assert await count_jobs(db) == 0
    assert await count_parts(db) == 0


async def test_declared_length_over_the_limit_is_refused_before_reading(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    read = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal read
        for _ in range(40):
            read += 1
            yield b"x" * 8192

    headers = {**examiner.headers, **CSV, "Content-Length": str(10 * 1024 * 1024)}
    response = await client.post(imports_url(exam_id), content=chunks(), headers=headers)
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert read <= 1  # the body was not read (the transport may pull one chunk)
    assert await count_jobs(db) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/json"])
async def test_other_body_types_are_415(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID, content_type: str
) -> None:
    response = await client.post(
        imports_url(exam_id),
        content=SMALL,
        headers={**examiner.headers, "Content-Type": content_type},
    )
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert await count_jobs(db) == 0


async def test_multipart_part_of_an_unknown_type_is_415(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    body, content_type = multipart(SMALL, filename="marks.json", content_type="application/json")
    response = await client.post(
        imports_url(exam_id),
        content=body,
        headers={**examiner.headers, "Content-Type": content_type},
    )
    assert response.status_code == 415, response.text
    assert await count_jobs(db) == 0


async def test_excel_labelled_csv_part_is_accepted_as_csv(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    body, content_type = multipart(
        SMALL, filename="marks.csv", content_type="application/vnd.ms-excel"
    )
    response = await client.post(
        imports_url(exam_id),
        content=body,
        headers={**examiner.headers, "Content-Type": content_type},
    )
    assert response.status_code == 202, response.text
    assert response.json()["format"] == "csv"


async def test_xlsx_body_is_taken_as_xlsx(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    data = xlsx_bytes([("student_number", "subject_code", "mark"), ("S-1", "MATH", 5)])
    response = await client.post(
        imports_url(exam_id),
        content=data,
        headers={
            **examiner.headers,
            "Content-Type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        },
    )
    assert response.status_code == 202, response.text
    assert response.json()["format"] == "xlsx"
    stored, _ = await stored_upload(db, uuid.UUID(response.json()["id"]))
    assert stored == data


async def test_multipart_without_a_file_field_is_400(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    body, content_type = multipart(SMALL, name="upload")
    response = await client.post(
        imports_url(exam_id),
        content=body,
        headers={**examiner.headers, "Content-Type": content_type},
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "BAD_REQUEST"
    assert await count_jobs(db) == 0


async def test_empty_body_is_422_and_leaves_nothing(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    response = await client.post(
        imports_url(exam_id), content=b"", headers={**examiner.headers, **CSV}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_FAILED"
    assert await count_jobs(db) == 0
    assert await count_parts(db) == 0


async def test_same_idempotency_key_same_user_is_one_job(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    headers = {**examiner.headers, **CSV, "Idempotency-Key": "k-1"}
    first = await client.post(imports_url(exam_id), content=SMALL, headers=headers)
    second = await client.post(
        imports_url(exam_id), content=SMALL + b"S-2,MATH,1\r\n", headers=headers
    )
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert await count_jobs(db) == 1
    stored, _ = await stored_upload(db, uuid.UUID(first.json()["id"]))
    assert stored == SMALL


async def test_a_replay_that_is_no_upload_gets_its_own_error_not_the_earlier_job(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    key = {"Idempotency-Key": "k-replay"}
    first = await client.post(
        imports_url(exam_id), content=SMALL, headers={**examiner.headers, **CSV, **key}
    )
    assert first.status_code == 202
    for headers, body, status in (
        ({}, b"", 415),  # no body, no type
        ({"Content-Type": "image/png"}, b"\x89PNG", 415),
        ({"Content-Type": "multipart/form-data"}, b"", 400),  # no boundary
        ({"Content-Type": "multipart/form-data; boundary=b"}, b"--b--\r\n", 400),  # no file
        ({**CSV}, b"", 422),  # empty
    ):
        response = await client.post(
            imports_url(exam_id), content=body, headers={**examiner.headers, **key, **headers}
        )
        assert response.status_code == status, response.text
    assert await count_jobs(db) == 1


async def test_same_idempotency_key_different_users_is_two_jobs(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    other_examiner: Caller,
    exam_id: uuid.UUID,
) -> None:
    ids = set()
    for who in (examiner, other_examiner):
        response = await client.post(
            imports_url(exam_id),
            content=SMALL,
            headers={**who.headers, **CSV, "Idempotency-Key": "k"},
        )
        assert response.status_code == 202, response.text
        ids.add(response.json()["id"])
    assert len(ids) == 2
    assert await count_jobs(db) == 2


async def test_concurrent_requests_with_one_key_make_one_job(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    headers = {**examiner.headers, **CSV, "Idempotency-Key": "same"}
    responses = await asyncio.gather(
        *(client.post(imports_url(exam_id), content=SMALL, headers=headers) for _ in range(5))
    )
    assert [r.status_code for r in responses] == [202] * 5, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert await count_jobs(db) == 1
    assert await count_parts(db) == 1
    assert len(await outbox_of(db, "bulk.job.requested", uuid.UUID(responses[0].json()["id"]))) == 1


async def test_unknown_exam_is_404_without_any_row(
    client: AsyncClient, db: Database, examiner: Caller
) -> None:
    response = await client.post(
        imports_url(uuid.uuid4()), content=SMALL, headers={**examiner.headers, **CSV}
    )
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert await count_jobs(db) == 0
    assert await count_parts(db) == 0


async def test_results_down_is_503(
    client: AsyncClient,
    db: Database,
    examiner: Caller,
    exam_id: uuid.UUID,
    results_stub: ResultsStub,
) -> None:
    results_stub.failing = True
    response = await client.post(
        imports_url(exam_id), content=SMALL, headers={**examiner.headers, **CSV}
    )
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert await count_jobs(db) == 0


async def test_results_unreachable_is_503(
    jwt_keys: JwtKeys, redis: Redis, settings: BulkSettings, examiner: Caller
) -> None:
    from conftest import _running_app  # the app with results at a closed port

    closed = settings.model_copy(update={"results_url": "http://127.0.0.1:9"})
    async for _, http in _running_app(closed, jwt_keys):
        response = await http.post(
            imports_url(uuid.uuid4()), content=SMALL, headers={**examiner.headers, **CSV}
        )
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"


async def test_student_is_403(
    client: AsyncClient, db: Database, student: Caller, exam_id: uuid.UUID
) -> None:
    response = await client.post(
        imports_url(exam_id), content=SMALL, headers={**student.headers, **CSV}
    )
    assert response.status_code == 403, response.text
    assert await count_jobs(db) == 0


async def test_users_import_is_for_admins(
    client: AsyncClient, db: Database, examiner: Caller, admin: Caller
) -> None:
    users = csv_bytes(
        [("email", "full_name", "role", "student_number"), ("a@x.edu", "A", "student", "S-1")]
    )
    refused = await client.post(
        "/api/v1/users/imports", content=users, headers={**examiner.headers, **CSV}
    )
    assert refused.status_code == 403
    accepted = await client.post(
        "/api/v1/users/imports", content=users, headers={**admin.headers, **CSV}
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["kind"] == "users_import"


async def test_job_row_and_requested_command_are_written_together(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    response = await client.post(
        imports_url(exam_id) + "?dry_run=true&mode=all_or_nothing",
        content=SMALL,
        headers={**examiner.headers, **CSV},
    )
    assert response.status_code == 202, response.text
    job_id = uuid.UUID(response.json()["id"])
    found = await rows(
        db,
        "SELECT kind, status, stage, exam_id, dry_run, mode, created_by, created_by_role "
        "FROM bulk.jobs WHERE id = :j",
        j=job_id,
    )
    assert len(found) == 1
    assert dict(found[0]) == {
        "kind": "marks_import",
        "status": "queued",
        "stage": "reading",
        "exam_id": exam_id,
        "dry_run": True,
        "mode": "all_or_nothing",
        "created_by": examiner.user_id,
        "created_by_role": "examiner",
    }
    commands = await outbox_of(db, "bulk.job.requested", job_id)
    assert commands == [{"job_id": str(job_id), "kind": "marks_import"}]


async def test_a_refused_upload_writes_no_command(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    await client.post(imports_url(exam_id), content=b"", headers={**examiner.headers, **CSV})
    await client.post(
        imports_url(exam_id), content=big_csv(200 * 1024), headers={**examiner.headers, **CSV}
    )
    assert await rows(db, "SELECT * FROM bulk.outbox") == []


def in_pieces(body: bytes, size: int) -> AsyncIterator[bytes]:
    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), size):
            yield body[start : start + size]

    return pieces()


async def test_multipart_streamed_in_odd_pieces_is_stored_exactly(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    # Bytes that look like the start of a boundary, split across pieces, and a
    # field before the file larger than one piece.
    data = (b"a,b\r\n--not-the-boundary\r\n\r\n--" * 1500) + os.urandom(20_000)
    boundary = "XyZ-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'.encode()
            + b"n" * 5000
            + f"\r\n--{boundary}\r\n".encode()
        )
        + b'Content-Disposition: form-data; name="file"; filename="m.csv"\r\n'
        + b"Content-Type: text/csv\r\n\r\n"
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = await client.post(
        imports_url(exam_id),
        content=in_pieces(body, 997),
        headers={**examiner.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 202, response.text
    stored, _ = await stored_upload(db, uuid.UUID(response.json()["id"]))
    assert stored == data


async def test_second_file_field_is_ignored(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    boundary = "twofiles"
    part = (
        'Content-Disposition: form-data; name="file"; filename="{}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    )
    body = (
        f"--{boundary}\r\n{part.format('one.csv')}".encode()
        + SMALL
        + f"\r\n--{boundary}\r\n{part.format('two.csv')}".encode()
        + b"other,file\r\n"
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = await client.post(
        imports_url(exam_id),
        content=body,
        headers={**examiner.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 202, response.text
    assert response.json()["file_name"] == "one.csv"
    stored, _ = await stored_upload(db, uuid.UUID(response.json()["id"]))
    assert stored == SMALL


async def test_multipart_without_boundary_is_400(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    response = await client.post(
        imports_url(exam_id),
        content=SMALL,
        headers={**examiner.headers, "Content-Type": "multipart/form-data"},
    )
    assert response.status_code == 400, response.text
    assert await count_jobs(db) == 0


@pytest.mark.parametrize(
    "cut",
    [
        200,  # inside the file: its end and the closing boundary are missing
        4,  # "--\r\n": the last boundary is there but not marked as the last
        len(b"\r\n--") + 40 + len(b"--\r\n"),  # the whole closing line
    ],
)
async def test_truncated_multipart_body_stores_nothing(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID, cut: int
) -> None:
    """A body cut off before its closing boundary is not a whole file."""
    body, content_type = multipart(SMALL + b"S-2,MATH,60\r\n" * 100)
    response = await client.post(
        imports_url(exam_id),
        content=in_pieces(body[: len(body) - cut], 512),
        headers={**examiner.headers, "Content-Type": content_type},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "BAD_REQUEST" and "closing boundary" in error["message"]
    assert await count_jobs(db) == 0
    assert await count_parts(db) == 0


async def test_multipart_body_without_the_final_crlf_is_whole(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    body, content_type = multipart(SMALL)
    assert body.endswith(b"--\r\n")
    response = await client.post(
        imports_url(exam_id),
        content=body[:-2],
        headers={**examiner.headers, "Content-Type": content_type},
    )
    assert response.status_code == 202, response.text
    stored, _ = await stored_upload(db, uuid.UUID(response.json()["id"]))
    assert stored == SMALL


async def test_a_file_of_exactly_the_limit_is_accepted(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID, settings: BulkSettings
) -> None:
    at_limit = big_csv(settings.max_upload_bytes)
    raw = await client.post(
        imports_url(exam_id), content=in_pieces(at_limit, 8192), headers={**examiner.headers, **CSV}
    )
    assert raw.status_code == 202, raw.text
    body, content_type = multipart(at_limit)
    framed = await client.post(
        imports_url(exam_id),
        content=body,
        headers={**examiner.headers, "Content-Type": content_type},
    )
    assert framed.status_code == 202, framed.text
    for response in (raw, framed):
        stored, parts = await stored_upload(db, uuid.UUID(response.json()["id"]))
        assert stored == at_limit and parts == 2
    over = await client.post(
        imports_url(exam_id), content=at_limit + b"x", headers={**examiner.headers, **CSV}
    )
    assert over.status_code == 413
    assert await count_jobs(db) == 2


async def test_a_key_whose_upload_was_refused_can_be_used_again(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    headers = {**examiner.headers, **CSV, "Idempotency-Key": "retry-me"}
    refused = await client.post(imports_url(exam_id), content=big_csv(200 * 1024), headers=headers)
    assert refused.status_code == 413
    accepted = await client.post(imports_url(exam_id), content=SMALL, headers=headers)
    assert accepted.status_code == 202, accepted.text
    assert await count_jobs(db) == 1


async def test_xlsx_in_multipart_named_by_its_file_name(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    data = xlsx_bytes([("student_number", "subject_code", "mark"), ("S-1", "MATH", 5)])
    body, content_type = multipart(
        data, filename="Marks.XLSX", content_type="application/octet-stream"
    )
    response = await client.post(
        imports_url(exam_id),
        content=body,
        headers={**examiner.headers, "Content-Type": content_type},
    )
    assert response.status_code == 202, response.text
    assert response.json()["format"] == "xlsx"


@pytest.mark.parametrize(
    "content_type", ["text/csv; charset=utf-8", "application/csv", "Text/CSV", "text/csv;"]
)
async def test_csv_media_type_spellings_are_accepted(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID, content_type: str
) -> None:
    response = await client.post(
        imports_url(exam_id),
        content=SMALL,
        headers={**examiner.headers, "Content-Type": content_type},
    )
    assert response.status_code == 202, response.text
    assert response.json()["format"] == "csv"


async def test_a_body_without_a_content_type_is_415(
    client: AsyncClient, db: Database, examiner: Caller, exam_id: uuid.UUID
) -> None:
    response = await client.post(imports_url(exam_id), content=SMALL, headers=examiner.headers)
    assert response.status_code == 415, response.text
    assert await count_jobs(db) == 0
