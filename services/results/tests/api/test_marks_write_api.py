"""PUT /exams/{id}/marks: atomic batches, every problem listed, set-based upsert, audit."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from results_support import AuthStub, Caller, exam_payload, present, seed_students
from service_kit.db import Database
from sqlalchemy import text


async def _exam(client: AsyncClient, admin: Caller, **overrides: object) -> str:
    response = await client.post(
        "/api/v1/exams", json=exam_payload(**overrides), headers=admin.headers
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _count(db: Database, sql: str, **params: object) -> int:
    async with db.read_session() as session:
        return int((await session.execute(text(sql), params)).scalar_one())


async def _marks_version(db: Database, exam_id: str) -> int:
    return await _count(db, "SELECT marks_version FROM results.exams WHERE id = :id", id=exam_id)


async def test_batch_is_written_and_counts_written_and_unchanged(
    client: AsyncClient, admin: Caller, db: Database
) -> None:
    exam_id = await _exam(client, admin)
    await seed_students(db, ["S1", "S2", "S3"])
    url = f"/api/v1/exams/{exam_id}/marks"
    first = [
        present("S1", "MATH", 79.5),
        present("S1", "PHYS", 45),
        {"student_number": "S2", "subject_code": "PHYS", "status": "absent"},
        {"student_number": "S3", "subject_code": "PHYS", "status": "exempt", "mark": None},
    ]
    response = await client.put(url, json={"marks": first}, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"written": 4, "unchanged": 0}
    assert await _marks_version(db, exam_id) == 1

    again = [present("S1", "MATH", 79.50), present("S1", "PHYS", 44), first[2]]
    response = await client.put(url, json={"marks": again}, headers=admin.headers)
    assert response.json() == {"written": 1, "unchanged": 2}
    assert await _marks_version(db, exam_id) == 2

    response = await client.put(url, json={"marks": again}, headers=admin.headers)
    assert response.json() == {"written": 0, "unchanged": 3}
    # Nothing changed: results are not made stale again, nothing is announced.
    assert await _marks_version(db, exam_id) == 2
    assert await _count(db, "SELECT count(*) FROM results.outbox") == 2
    assert await _count(db, "SELECT count(*) FROM results.mark_audit") == 5
    metrics = (await client.get("/metrics")).text
    assert 'results_mark_entries_total{outcome="written",source="api"}' in metrics


async def test_unchanged_entries_keep_their_updated_at_and_author(
    client: AsyncClient, admin: Caller, db: Database, jwt_keys, settings
) -> None:
    from results_support import caller

    other_admin = caller(jwt_keys, settings, "admin")
    exam_id = await _exam(client, admin)
    await seed_students(db, ["U1"])
    url = f"/api/v1/exams/{exam_id}/marks"
    await client.put(url, json={"marks": [present("U1", "MATH", 50)]}, headers=admin.headers)
    before = (await client.get(url, headers=admin.headers)).json()["items"][0]
    await client.put(url, json={"marks": [present("U1", "MATH", 50)]}, headers=other_admin.headers)
    after = (await client.get(url, headers=admin.headers)).json()["items"][0]
    assert after == before
    assert after["updated_by"] == str(admin.user_id)


async def test_one_bad_entry_writes_nothing_and_every_problem_is_listed(
    client: AsyncClient, admin: Caller, db: Database, auth_stub: AuthStub
) -> None:
    exam_id = await _exam(client, admin)
    await seed_students(db, ["V1", "V2"])
    marks = [
        present("V1", "MATH", 50),  # 0: fine
        present("NOBODY-1", "MATH", 50),  # 1
        present("V1", "ART", 10),  # 2
        present("V2", "MATH", 100.01),  # 3
        {"student_number": "V2", "subject_code": "PHYS", "status": "present"},  # 4
        {"student_number": "V1", "subject_code": "PHYS", "status": "absent", "mark": 3},  # 5
        present("V2", "MATH", 12.345),  # 6: also a duplicate of 3
        present("V2", "MATH", -1),  # 7: also a duplicate of 3
        {"student_number": "V2", "subject_code": "CHEM", "status": "sick"},  # 8
    ]
    response = await client.put(
        f"/api/v1/exams/{exam_id}/marks", json={"marks": marks}, headers=admin.headers
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_FAILED"
    found = [(d["field"], d["code"]) for d in error["details"]]
    assert found == [
        ("marks[1].student_number", "STUDENT_NOT_FOUND"),
        ("marks[2].subject_code", "SUBJECT_NOT_FOUND"),
        ("marks[3].mark", "MARK_OUT_OF_RANGE"),
        ("marks[3]", "DUPLICATE_ENTRY"),
        ("marks[4].mark", "MARK_REQUIRED"),
        ("marks[5].mark", "MARK_NOT_ALLOWED"),
        ("marks[6].mark", "TOO_MANY_DECIMALS"),
        ("marks[6]", "DUPLICATE_ENTRY"),
        ("marks[7].mark", "MARK_OUT_OF_RANGE"),
        ("marks[7]", "DUPLICATE_ENTRY"),
        ("marks[8].subject_code", "SUBJECT_NOT_FOUND"),
        ("marks[8].status", "INVALID_STATUS"),
    ]
    assert all(d["message"] for d in error["details"])
    assert await _count(db, "SELECT count(*) FROM results.marks") == 0
    assert await _count(db, "SELECT count(*) FROM results.mark_audit") == 0
    assert await _count(db, "SELECT count(*) FROM results.outbox") == 0
    assert await _marks_version(db, exam_id) == 0
    # The unknown number was asked of auth before being called unknown.
    assert auth_stub.lookups_of(["NOBODY-1"]) == [["NOBODY-1"]]


async def test_audit_records_old_and_new_values_author_reason_and_source(
    client: AsyncClient, admin: Caller, db: Database
) -> None:
    exam_id = await _exam(client, admin)
    await seed_students(db, ["A1"])
    url = f"/api/v1/exams/{exam_id}/marks"
    await client.put(url, json={"marks": [present("A1", "MATH", 40)]}, headers=admin.headers)
    await client.put(
        url,
        json={
            "marks": [{"student_number": "A1", "subject_code": "MATH", "status": "absent"}],
            "reason": "was not there",
        },
        headers=admin.headers,
    )
    response = await client.get(f"{url}/audit", headers=admin.headers)
    assert response.status_code == 200
    newest, oldest = response.json()["items"]
    assert oldest | {"changed_at": None} == {
        "student_number": "A1", "subject_code": "MATH", "old_status": None, "old_mark": None,
        "new_status": "present", "new_mark": 40, "changed_by": str(admin.user_id),
        "changed_at": None, "reason": None, "source": "api", "job_id": None,
    }  # fmt: skip
    assert (newest["old_status"], newest["old_mark"]) == ("present", 40)
    assert (newest["new_status"], newest["new_mark"]) == ("absent", None)
    assert newest["reason"] == "was not there"


async def test_examiner_writes_only_assigned_subjects_or_unassigned_ones(
    client: AsyncClient, admin: Caller, examiner: Caller, db: Database, jwt_keys, settings
) -> None:
    from results_support import caller

    other = caller(jwt_keys, settings, "examiner")
    body = exam_payload()
    body["subjects"][0]["examiner_ids"] = [str(examiner.user_id)]  # MATH: assigned
    exam_id = await _exam(client, admin, subjects=body["subjects"])  # PHYS: nobody assigned
    await seed_students(db, ["E1"])
    url = f"/api/v1/exams/{exam_id}/marks"

    mine = await client.put(
        url,
        json={"marks": [present("E1", "MATH", 70), present("E1", "PHYS", 30)]},
        headers=examiner.headers,
    )
    assert mine.status_code == 200, mine.text
    refused = await client.put(
        url,
        json={"marks": [present("E1", "PHYS", 31), present("E1", "MATH", 71)]},
        headers=other.headers,
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "FORBIDDEN"
    allowed = await client.put(
        url, json={"marks": [present("E1", "PHYS", 31)]}, headers=other.headers
    )
    assert allowed.json() == {"written": 1, "unchanged": 0}


async def test_students_cannot_write_marks(
    client: AsyncClient, admin: Caller, student: Caller
) -> None:
    exam_id = await _exam(client, admin)
    response = await client.put(
        f"/api/v1/exams/{exam_id}/marks", json={"marks": []}, headers=student.headers
    )
    assert response.status_code == 403


async def test_unknown_exam_is_404(client: AsyncClient, admin: Caller) -> None:
    response = await client.put(
        f"/api/v1/exams/{uuid.uuid4()}/marks", json={"marks": []}, headers=admin.headers
    )
    assert response.status_code == 404


async def _publish(db: Database, exam_id: str) -> None:
    async with db.transaction() as session:
        await session.execute(
            text(
                "UPDATE results.exams SET status = 'published', published_at = now(), "
                "results_version = marks_version WHERE id = :id"
            ),
            {"id": exam_id},
        )


async def test_after_publication_only_admins_with_a_reason_change_marks(
    client: AsyncClient, admin: Caller, examiner: Caller, db: Database
) -> None:
    exam_id = await _exam(client, admin)
    await seed_students(db, ["PUB-1"])
    url = f"/api/v1/exams/{exam_id}/marks"
    await client.put(url, json={"marks": [present("PUB-1", "MATH", 50)]}, headers=admin.headers)
    await _publish(db, exam_id)
    change = [present("PUB-1", "MATH", 55)]

    for who, body in (
        (examiner, {"marks": change, "reason": "recount"}),
        (admin, {"marks": change}),
        (admin, {"marks": change, "reason": "   "}),
    ):
        response = await client.put(url, json=body, headers=who.headers)
        assert response.status_code == 409, body
        assert response.json()["error"]["code"] == "EXAM_PUBLISHED"

    response = await client.put(
        url, json={"marks": change, "reason": "recount"}, headers=admin.headers
    )
    assert response.json() == {"written": 1, "unchanged": 0}
    async with db.read_session() as session:
        payload = (
            await session.execute(
                text("SELECT payload FROM results.outbox ORDER BY created_at DESC LIMIT 1")
            )
        ).scalar_one()
    # The regeneration this asks for publishes results.updated (exam_published).
    assert payload["exam_published"] is True
    assert payload["cause"] == "marks" and payload["source"] == "api"
    exam = (await client.get(f"/api/v1/exams/{exam_id}", headers=admin.headers)).json()
    assert exam["results_stale"] is True


async def test_marks_changed_is_written_once_per_changing_batch(
    client: AsyncClient, admin: Caller, db: Database
) -> None:
    exam_id = await _exam(client, admin)
    await seed_students(db, ["MC-1", "MC-2"])
    response = await client.put(
        f"/api/v1/exams/{exam_id}/marks",
        json={"marks": [present("MC-1", "MATH", 1), present("MC-2", "MATH", 2)]},
        headers=admin.headers,
    )
    assert response.status_code == 200
    async with db.read_session() as session:
        rows = (
            await session.execute(
                text("SELECT type, version, routing_key, producer, payload FROM results.outbox")
            )
        ).all()
    assert len(rows) == 1
    assert (rows[0].type, rows[0].version, rows[0].routing_key, rows[0].producer) == (
        "marks.changed", 1, "marks.changed", "results",
    )  # fmt: skip
    assert rows[0].payload == {
        "exam_id": exam_id, "marks_version": 1, "cause": "marks", "source": "api",
        "changed": 2, "exam_published": False,
    }  # fmt: skip


async def test_student_unknown_locally_is_looked_up_in_auth_and_kept(
    client: AsyncClient, admin: Caller, db: Database, auth_stub: AuthStub
) -> None:
    exam_id = await _exam(client, admin)
    number = f"NEW-{uuid.uuid4().hex[:6]}"
    user_id = auth_stub.add_student(number, active=False)  # invited, not yet active
    response = await client.put(
        f"/api/v1/exams/{exam_id}/marks",
        json={"marks": [present(number, "MATH", 66)]},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    async with db.read_session() as session:
        row = (
            await session.execute(
                text("SELECT user_id, active FROM results.students WHERE student_number = :n"),
                {"n": number},
            )
        ).one()
    assert (row.user_id, row.active) == (user_id, False)
    # Known now: the next batch does not ask auth again.
    await client.put(
        f"/api/v1/exams/{exam_id}/marks",
        json={"marks": [present(number, "PHYS", 20)]},
        headers=admin.headers,
    )
    assert len(auth_stub.lookups_of([number])) == 1


async def test_auth_unreachable_is_503_not_student_not_found(
    client: AsyncClient, admin: Caller, auth_stub: AuthStub
) -> None:
    exam_id = await _exam(client, admin)
    auth_stub.failing = True
    try:
        response = await client.put(
            f"/api/v1/exams/{exam_id}/marks",
            json={"marks": [present("GHOST-1", "MATH", 1)]},
            headers=admin.headers,
        )
    finally:
        auth_stub.failing = False
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert response.headers["Retry-After"]


async def test_five_thousand_entries_in_one_call_and_no_more(
    client: AsyncClient, admin: Caller, db: Database, auth_stub: AuthStub
) -> None:
    exam_id = await _exam(client, admin)
    numbers = [f"BIG-{i:05d}" for i in range(2500)]
    await seed_students(db, numbers[:2000])
    for n in numbers[2000:]:  # 500 only auth knows: one lookup call of them
        auth_stub.add_student(n)
    marks = [present(n, s, 50) for n in numbers for s in ("MATH", "PHYS")]
    assert len(marks) == 5000
    url = f"/api/v1/exams/{exam_id}/marks"
    response = await client.put(url, json={"marks": marks}, headers=admin.headers)
    assert response.status_code == 200, response.text[:500]
    assert response.json() == {"written": 5000, "unchanged": 0}
    assert await _count(db, "SELECT count(*) FROM results.mark_audit") == 5000
    assert len(auth_stub.lookups_of(numbers)) == 1

    too_many = [*marks, present("BIG-99999", "MATH", 1)]
    response = await client.put(url, json={"marks": too_many}, headers=admin.headers)
    assert response.status_code == 422
    assert response.json()["error"]["details"] == [
        {
            "field": "marks",
            "code": "TOO_MANY_ENTRIES",
            "message": "at most 5000 entries a call, got 5001",
        }
    ]


async def test_malformed_entries_are_schema_errors(client: AsyncClient, admin: Caller) -> None:
    exam_id = await _exam(client, admin)
    response = await client.put(
        f"/api/v1/exams/{exam_id}/marks",
        json={"marks": [{"student_number": "X", "subject_code": "MATH", "status": "present",
                         "mark": "eighty"}]},
        headers=admin.headers,
    )  # fmt: skip
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "marks[0].mark"


async def test_marks_must_be_json_numbers_not_strings_or_booleans(
    client: AsyncClient, admin: Caller, db: Database
) -> None:
    exam_id = await _exam(client, admin)
    await seed_students(db, ["N1"])
    url = f"/api/v1/exams/{exam_id}/marks"
    not_numbers: list[str | bool] = ["75", "1_0", "١٢", " 75 ", True, False]
    marks = [present("N1", "MATH", value) for value in not_numbers]
    response = await client.put(url, json={"marks": marks}, headers=admin.headers)
    assert response.status_code == 422, response.text
    found = [(d["field"], d["code"]) for d in response.json()["error"]["details"]]
    assert found == [(f"marks[{i}].mark", "DECIMAL_TYPE") for i in range(len(not_numbers))]
    assert await _count(db, "SELECT count(*) FROM results.marks") == 0

    # A JSON number reaches the Decimal as written: 79.995 is not rounded to 80.00.
    response = await client.put(
        url, json={"marks": [present("N1", "MATH", 79.995)]}, headers=admin.headers
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["code"] == "TOO_MANY_DECIMALS"
    response = await client.put(
        url, json={"marks": [present("N1", "MATH", 79.99)]}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    stored = await client.get(url, headers=admin.headers)
    assert stored.json()["items"][0]["mark"] == 79.99


async def test_exam_numbers_must_be_json_numbers(client: AsyncClient, admin: Caller) -> None:
    body = exam_payload()
    body["subjects"][0]["max_mark"] = "100"
    body["grading_scale"][0]["min_percent"] = "8_0"
    body["pass_percent"] = True
    response = await client.post("/api/v1/exams", json=body, headers=admin.headers)
    assert response.status_code == 422, response.text
    found = {(d["field"], d["code"]) for d in response.json()["error"]["details"]}
    assert found == {
        ("subjects[0].max_mark", "DECIMAL_TYPE"),
        ("grading_scale[0].min_percent", "DECIMAL_TYPE"),
        ("pass_percent", "DECIMAL_TYPE"),
    }
    exam_id = await _exam(client, admin)
    response = await client.patch(
        f"/api/v1/exams/{exam_id}", json={"pass_percent": " 50 "}, headers=admin.headers
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["code"] == "DECIMAL_TYPE"
