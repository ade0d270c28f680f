"""Reading results: the Result JSON of API.md, pagination, who may see what, the export."""

from __future__ import annotations

import random
import uuid
from decimal import Decimal
from typing import Any

import orjson
from gen_support import (
    create_exam,
    create_students,
    expected_results,
    metric_value,
    random_entries,
    running_app,
    write_marks,
)
from httpx import AsyncClient
from results_service.domain import ExamRules, GradeBand, MarkEntry, MarkStatus, RankMethod, Subject
from results_support import Caller, JwtKeys
from service_kit.db import Database
from service_kit.testing import temporary_database
from sqlalchemy import text

D = Decimal
WORKED = ExamRules(
    (Subject("MATH", D(100), D(40), D(2)), Subject("PHYS", D(50), D(20), D(1))),
    (GradeBand("A", D(80), D(4)), GradeBand("B", D(60), D(3)), GradeBand("C", D(40), D(2)),
     GradeBand("F", D(0), D(0))),
    pass_percent=D(40),
)  # fmt: skip
WORKED_MARKS = [
    MarkEntry("S1", "MATH", MarkStatus.PRESENT, D("79.5")),
    MarkEntry("S1", "PHYS", MarkStatus.PRESENT, D(45)),
    MarkEntry("S2", "MATH", MarkStatus.PRESENT, D(90)),
    MarkEntry("S2", "PHYS", MarkStatus.ABSENT),
    MarkEntry("S3", "MATH", MarkStatus.PRESENT, D(60)),
    MarkEntry("S3", "PHYS", MarkStatus.EXEMPT),
    MarkEntry("S4", "MATH", MarkStatus.PRESENT, D(70)),
]
RESULT_KEYS = [
    "exam_id", "student_number", "student_name", "status", "total", "max_total", "percentage",
    "grade", "gpa", "passed", "rank", "generation", "subjects",
]  # fmt: skip
SUBJECT_KEYS = ["code", "status", "mark", "percentage", "grade", "points", "passed"]


async def _worked_exam(
    db: Database,
    client: AsyncClient,
    admin: Caller,
    owner: uuid.UUID | None = None,
    ids: dict[str, uuid.UUID] | None = None,
) -> tuple[uuid.UUID, dict[str, uuid.UUID]]:
    async with db.primary.connect() as conn:
        async with conn.begin():
            if ids is None:
                ids = await create_students(
                    conn, ["S1", "S2", "S3", "S4"], names={"S1": "Ada Lovelace"}
                )
            if owner is not None and ids["S1"] != owner:  # S1 is the test's signed-in student
                await conn.execute(
                    text("UPDATE results.students SET user_id = :u WHERE student_number = 'S1'"),
                    {"u": owner},
                )
                ids["S1"] = owner
            exam_id = await create_exam(conn, WORKED)
        await write_marks(conn, exam_id, WORKED_MARKS, ids)
    response = await client.post(f"/api/v1/exams/{exam_id}/results/generate", headers=admin.headers)
    assert response.status_code == 200, response.text
    return exam_id, ids


async def _publish(client: AsyncClient, admin: Caller, exam_id: uuid.UUID) -> None:
    response = await client.post(f"/api/v1/exams/{exam_id}/publish", headers=admin.headers)
    assert response.status_code == 200, response.text


async def test_result_json_is_exactly_the_contract(
    client: AsyncClient, db: Database, admin: Caller, examiner: Caller
) -> None:
    exam_id, _ = await _worked_exam(db, client, admin)
    response = await client.get(f"/api/v1/exams/{exam_id}/results/S1", headers=examiner.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == RESULT_KEYS
    assert body == {
        "exam_id": str(exam_id), "student_number": "S1", "student_name": "Ada Lovelace",
        "status": "complete", "total": 124.5, "max_total": 150, "percentage": 83,
        "grade": "A", "gpa": 3.33, "passed": True, "rank": 1, "generation": 1,
        "subjects": [
            {"code": "MATH", "status": "present", "mark": 79.5, "percentage": 79.5,
             "grade": "B", "points": 3, "passed": True},
            {"code": "PHYS", "status": "present", "mark": 45, "percentage": 90,
             "grade": "A", "points": 4, "passed": True},
        ],
    }  # fmt: skip
    assert [list(s) for s in body["subjects"]] == [SUBJECT_KEYS, SUBJECT_KEYS]
    # JSON numbers with two decimals, exactly as stored.
    assert '"total":124.50' in response.text.replace(" ", "")
    assert '"percentage":83.00' in response.text.replace(" ", "")
    s4 = (await client.get(f"/api/v1/exams/{exam_id}/results/S4", headers=admin.headers)).json()
    assert (s4["status"], s4["total"], s4["rank"], len(s4["subjects"])) == (
        "incomplete",
        None,
        None,
        1,
    )
    s2 = (await client.get(f"/api/v1/exams/{exam_id}/results/S2", headers=admin.headers)).json()
    assert s2["subjects"][1] == {
        "code": "PHYS", "status": "absent", "mark": 0, "percentage": 0, "grade": "F",
        "points": 0, "passed": False,
    }  # fmt: skip
    s3 = (await client.get(f"/api/v1/exams/{exam_id}/results/S3", headers=admin.headers)).json()
    assert s3["subjects"][1] == {
        "code": "PHYS", "status": "exempt", "mark": None, "percentage": None, "grade": None,
        "points": None, "passed": None,
    }  # fmt: skip
    missing = await client.get(f"/api/v1/exams/{exam_id}/results/NOPE", headers=admin.headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "NOT_FOUND"
    unknown = await client.get(f"/api/v1/exams/{uuid.uuid4()}/results/S1", headers=admin.headers)
    assert unknown.status_code == 404


async def test_list_pages_by_rank_nulls_last_then_number(
    client: AsyncClient, db: Database, admin: Caller, examiner: Caller, student: Caller
) -> None:
    rng = random.Random(5)
    rules = ExamRules(
        (Subject("X", D(10), D(5)), Subject("Y", D(10), D(5))),
        (GradeBand("P", D(50), D(1)), GradeBand("F", D(0), D(0))),
        rank_method=RankMethod.DENSE,
    )
    async with db.primary.connect() as conn:
        async with conn.begin():
            ids = await create_students(conn, [f"L{i:03d}" for i in range(123)])
            exam_id = await create_exam(conn, rules)
        entries = random_entries(rng, rules, list(ids))  # coarse marks: many ties
        await write_marks(conn, exam_id, entries, ids)
    await client.post(f"/api/v1/exams/{exam_id}/results/generate", headers=admin.headers)
    url = f"/api/v1/exams/{exam_id}/results"
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(url, params=params, headers=examiner.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert set(page) == {"items", "next_cursor"} and len(page["items"]) <= 10
        seen.extend(page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = expected_results(rules, entries)
    assert [r["student_number"] for r in seen] == [r.student_number for r in expected]
    assert [r["rank"] for r in seen] == [r.rank for r in expected]
    assert pages == (len(expected) + 9) // 10
    default = (await client.get(url, headers=admin.headers)).json()
    assert len(default["items"]) == 50 and default["next_cursor"] is not None
    everything = (await client.get(url, params={"limit": 500}, headers=admin.headers)).json()
    assert everything["next_cursor"] is None and len(everything["items"]) == len(expected)
    for params in ({"cursor": "not-a-cursor"}, {"cursor": "WzFd"}, {"cursor": "WyJ4IiwxXQ"},
                   {"limit": 0}, {"limit": 501}):  # fmt: skip
        bad = await client.get(url, params=params, headers=admin.headers)
        assert bad.status_code == 400, params
        assert bad.json()["error"]["code"] == "BAD_REQUEST"
    assert (await client.get(url, headers=student.headers)).status_code == 403
    assert (
        await client.get(f"/api/v1/exams/{uuid.uuid4()}/results", headers=admin.headers)
    ).status_code == 404


async def test_student_sees_only_their_own_result_and_only_once_published(
    client: AsyncClient, db: Database, admin: Caller, jwt_keys: JwtKeys, settings: Any
) -> None:
    from results_support import caller

    me = caller(jwt_keys, settings, "student")
    other = caller(jwt_keys, settings, "student")
    exam_id, _ = await _worked_exam(db, client, admin, owner=me.user_id)
    own = f"/api/v1/exams/{exam_id}/results/S1"
    assert (await client.get(own, headers=me.headers)).status_code == 404
    assert (await client.get("/api/v1/me/results", headers=me.headers)).json() == {
        "items": [],
        "next_cursor": None,
    }
    await _publish(client, admin, exam_id)
    mine = await client.get(own, headers=me.headers)
    assert mine.status_code == 200 and mine.json()["student_number"] == "S1"
    # Someone else's result is 404, the same as a missing one, cached or not.
    for _ in range(2):
        theirs = await client.get(f"/api/v1/exams/{exam_id}/results/S2", headers=me.headers)
        assert theirs.status_code == 404
        assert (await client.get(own, headers=other.headers)).status_code == 404
    listed = (await client.get("/api/v1/me/results", headers=me.headers)).json()
    assert listed["next_cursor"] is None
    assert [r["exam_id"] for r in listed["items"]] == [str(exam_id)]
    assert listed["items"][0] == mine.json()
    assert (await client.get("/api/v1/me/results", headers=other.headers)).json()["items"] == []
    assert (await client.get("/api/v1/me/results", headers=admin.headers)).status_code == 403


async def test_my_results_page_through_exams_newest_publication_first(
    client: AsyncClient, db: Database, admin: Caller, jwt_keys: JwtKeys, settings: Any
) -> None:
    from results_support import caller

    me = caller(jwt_keys, settings, "student")
    exams = []
    ids = None
    for _ in range(3):
        exam_id, ids = await _worked_exam(db, client, admin, owner=me.user_id, ids=ids)
        exams.append(exam_id)
    for exam_id in exams:
        await _publish(client, admin, exam_id)
    got: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/v1/me/results", params=params, headers=me.headers)).json()
        got.extend(r["exam_id"] for r in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert got == [str(e) for e in reversed(exams)]


async def test_published_results_are_cached_under_the_generation(
    client: AsyncClient, db: Database, admin: Caller, jwt_keys: JwtKeys, settings: Any
) -> None:
    from results_support import caller

    me = caller(jwt_keys, settings, "student")
    exam_id, ids = await _worked_exam(db, client, admin, owner=me.user_id)
    await _publish(client, admin, exam_id)
    url = f"/api/v1/exams/{exam_id}/results/S1"

    async def hits() -> float:
        text_ = (await client.get("/metrics")).text
        return metric_value(text_, "results_cache_requests_total", cache="result", outcome="hit")

    first = await client.get(url, headers=me.headers)
    h0 = await hits()
    second = await client.get(url, headers=me.headers)
    assert second.content == first.content
    assert await hits() == h0 + 1
    # A correction: a new generation changes the key, so the new value is read at once.
    async with db.primary.connect() as conn:
        await write_marks(conn, exam_id, [MarkEntry("S1", "PHYS", MarkStatus.PRESENT, D(40))], ids)
    await client.post(f"/api/v1/exams/{exam_id}/results/generate", headers=admin.headers)
    third = (await client.get(url, headers=me.headers)).json()
    assert third["subjects"][1]["mark"] == 40 and third["generation"] == 2


async def test_internal_export_streams_every_result_as_ndjson(
    client: AsyncClient, db: Database, admin: Caller, jwt_keys: JwtKeys, settings: Any
) -> None:
    exam_id, _ = await _worked_exam(db, client, admin)
    bulk = {"Authorization": f"Bearer {jwt_keys.service_token(settings)}"}
    response = await client.get(f"/internal/exams/{exam_id}/results.ndjson", headers=bulk)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    assert [r["student_number"] for r in lines] == ["S1", "S2", "S3", "S4"]
    listed = (await client.get(f"/api/v1/exams/{exam_id}/results", headers=admin.headers)).json()
    assert lines == listed["items"]
    unknown = await client.get(f"/internal/exams/{uuid.uuid4()}/results.ndjson", headers=bulk)
    assert unknown.status_code == 404


async def test_internal_exam_gives_bulk_the_subjects_in_order(
    client: AsyncClient, db: Database, admin: Caller, jwt_keys: JwtKeys, settings: Any
) -> None:
    exam_id, _ = await _worked_exam(db, client, admin)
    bulk = {"Authorization": f"Bearer {jwt_keys.service_token(settings)}"}
    response = await client.get(f"/internal/exams/{exam_id}", headers=bulk)
    assert response.status_code == 200, response.text
    public = (await client.get(f"/api/v1/exams/{exam_id}", headers=admin.headers)).json()
    body = response.json()
    assert body["id"] == str(exam_id) and body["code"] == public["code"]
    assert [s["code"] for s in body["subjects"]] == [s["code"] for s in public["subjects"]]
    # Same model and serialisation as the public read: max_mark is a JSON number.
    assert body == public
    assert all(isinstance(s["max_mark"], int | float) for s in body["subjects"])
    fresh = await client.get(f"/internal/exams/{exam_id}", params={"fresh": "true"}, headers=bulk)
    assert fresh.json() == body
    unknown = await client.get(f"/internal/exams/{uuid.uuid4()}", headers=bulk)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "NOT_FOUND"
    for headers in ({}, admin.headers):
        refused = await client.get(f"/internal/exams/{exam_id}", headers=headers)
        assert refused.status_code == 401


async def test_internal_export_needs_a_service_token_for_results(
    client: AsyncClient, db: Database, admin: Caller, jwt_keys: JwtKeys, settings: Any
) -> None:
    """Before: anyone who reached the port read a draft exam's results."""
    exam_id, _ = await _worked_exam(db, client, admin)
    url = f"/internal/exams/{exam_id}/results.ndjson"
    for_auth = jwt_keys.service_token(settings, client_id="results", audience="internal:auth")

    for headers in (
        {},
        admin.headers,  # a user's token, even an admin's
        {"Authorization": f"Bearer {for_auth}"},  # a service token for another service
        {"Authorization": "Bearer garbage"},
    ):
        response = await client.get(url, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] in ("AUTH_TOKEN_MISSING", "AUTH_TOKEN_INVALID")
        assert b"student_number" not in response.content


async def test_a_service_token_opens_no_public_route(
    client: AsyncClient, jwt_keys: JwtKeys, settings: Any
) -> None:
    bulk = {"Authorization": f"Bearer {jwt_keys.service_token(settings)}"}

    assert (await client.get("/api/v1/exams", headers=bulk)).status_code == 401


async def test_lists_use_the_replica_except_for_whoever_just_generated(
    db: Database,
    settings: Any,
    jwt_keys: JwtKeys,
    admin: Caller,
    examiner: Caller,
    template_database: str,
) -> None:
    """A 'replica' that lags forever (a separate, empty database): the caller who just
    generated reads the primary and sees their results; everyone else reads the replica."""
    async with temporary_database("results_gen_test", template=template_database) as replica:
        lagging = settings.model_copy(update={"database_replica_url": replica})
        async with db.primary.connect() as conn:
            async with conn.begin():
                ids = await create_students(conn, ["S1"])
                exam_id = await create_exam(conn, WORKED)
            await write_marks(conn, exam_id, WORKED_MARKS[:1], ids)
        async with running_app(lagging, jwt_keys) as (_, client):
            url = f"/api/v1/exams/{exam_id}/results"
            generated = await client.post(f"{url}/generate", headers=admin.headers)
            assert generated.status_code == 200
            own = await client.get(url, headers=admin.headers)
            assert own.status_code == 200 and len(own.json()["items"]) == 1
            other = await client.get(url, headers=examiner.headers)
            assert other.status_code == 404  # the replica has not seen the exam yet


async def test_exam_definitions_are_cached_under_their_version(
    client: AsyncClient, db: Database, admin: Caller
) -> None:
    exam_id, ids = await _worked_exam(db, client, admin)
    url = f"/api/v1/exams/{exam_id}"

    async def hits() -> float:
        text_ = (await client.get("/metrics")).text
        return metric_value(text_, "results_cache_requests_total", cache="exam", outcome="hit")

    first = await client.get(url, headers=admin.headers)
    h0 = await hits()
    second = await client.get(url, headers=admin.headers)
    assert second.json() == first.json() and first.json()["results_stale"] is False
    assert await hits() == h0 + 1
    # A mark change bumps marks_version: a new key, so the staleness shows at once.
    async with db.primary.connect() as conn:
        await write_marks(conn, exam_id, [MarkEntry("S4", "PHYS", MarkStatus.ABSENT)], ids)
    assert (await client.get(url, headers=admin.headers)).json()["results_stale"] is True
