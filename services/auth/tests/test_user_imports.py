"""bulk's users import chunks over real RabbitMQ: create, update, unchanged, invite,
modes, refusals, idempotency per (job, chunk), and no password anywhere it should not be."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import orjson
import pytest
from auth_service.contracts import USER_IMPORT_QUEUE, UserImportChunkResultV1, UserImportChunkV1
from auth_support import ADMIN_EMAIL, ADMIN_PASSWORD, EventTap, Service, sql
from service_kit.messaging.envelope import EventEnvelope, to_amqp_message
from service_kit.messaging.topology import declare_events_exchange, queue_names
from service_kit.testing_logs import ARGON2_HASH, capture_all_logs

SECRET = "an-initial-password-42"


@pytest.fixture
async def tap(service: Service) -> AsyncIterator[EventTap]:
    tap = await EventTap.open(service.settings, ("users.import_chunk_result", "user.*"))
    try:
        yield tap
    finally:
        await tap.close()


async def _admin_id(service: Service) -> str:
    rows = await sql(service.settings, "SELECT id FROM auth.users WHERE email = $1", ADMIN_EMAIL)
    return str(rows[0]["id"])


def _row(row: int, email: str, role: str = "student", **over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "row": row,
        "email": email,
        "full_name": f"Person {row}",
        "role": role,
        "student_number": f"S-{email.split('@')[0]}" if role == "student" else None,
        "password": None,
    }
    return base | over


async def _send(
    service: Service,
    rows: list[dict[str, Any]],
    *,
    job_id: str | None = None,
    chunk_no: int = 0,
    requester: dict[str, str] | None = None,
    **over: Any,
) -> dict[str, Any]:
    chunk = {
        "job_id": job_id or str(uuid.uuid4()),
        "chunk_no": chunk_no,
        "mode": "partial",
        "dry_run": False,
        "requested_by": requester or {"user_id": await _admin_id(service), "role": "admin"},
        "rows": rows,
    } | over
    envelope = EventEnvelope(
        id=uuid.uuid4(),
        type=UserImportChunkV1.event_type,
        version=1,
        occurred_at=datetime.now(UTC),
        producer="bulk",
        data=chunk,
    )
    connection = await aio_pika.connect(service.settings.rabbitmq_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await declare_events_exchange(channel, service.settings)
        await exchange.publish(
            to_amqp_message(envelope, {}), routing_key=UserImportChunkV1.routing_key, mandatory=True
        )
    finally:
        await connection.close()
    return chunk


async def _answer(tap: EventTap, chunk: dict[str, Any]) -> UserImportChunkResultV1:
    envelope = await tap.next(
        "users.import_chunk_result", timeout=20, job_id=chunk["job_id"], chunk_no=chunk["chunk_no"]
    )
    return UserImportChunkResultV1.model_validate(envelope["data"])


async def _user(service: Service, email: str) -> dict[str, Any] | None:
    rows = await sql(
        service.settings,
        "SELECT full_name, role, student_number, active, version,"
        " password_hash IS NOT NULL AS has_password"
        " FROM auth.users WHERE email_canonical = lower($1)",
        email,
    )
    return dict(rows[0]) if rows else None


async def test_new_users_are_created_invited_or_with_their_password(
    service: Service, tap: EventTap
) -> None:
    tag = uuid.uuid4().hex[:6]
    invited, ready = f"inv-{tag}@example.edu", f"ready-{tag}@example.edu"
    chunk = await _send(
        service, [_row(2, invited), _row(3, ready, role="examiner", password=SECRET)]
    )
    answer = await _answer(tap, chunk)
    assert (answer.applied, answer.rows_ok, answer.rows_failed) == (True, 2, 0)
    assert (await _user(service, invited)) == {
        "full_name": "Person 2", "role": "student", "student_number": f"S-inv-{tag}",
        "active": False, "has_password": False, "version": 1,
    }  # fmt: skip
    await tap.next("user.invited", email=invited)
    token = await service.access_token(ready, SECRET)
    assert token


async def test_a_second_run_changes_only_what_differs_and_never_a_password(
    service: Service, tap: EventTap
) -> None:
    tag = uuid.uuid4().hex[:6]
    email = f"keep-{tag}@example.edu"
    first = await _send(service, [_row(2, email, role="examiner", password=SECRET)])
    assert (await _answer(tap, first)).rows_ok == 1
    same = await _send(service, [_row(2, email, role="examiner", password="another-password-9")])
    answer = await _answer(tap, same)
    assert (answer.rows_ok, answer.rows_unchanged) == (0, 1)
    renamed = await _send(service, [_row(2, email, role="admin", full_name="New Name")])
    answer = await _answer(tap, renamed)
    assert (answer.rows_ok, answer.rows_unchanged) == (1, 0)
    assert (await _user(service, email))["full_name"] == "New Name"  # type: ignore[index]
    assert await service.access_token(email, SECRET)  # the password is the first one


async def test_a_chunk_sent_again_is_applied_once_and_answered_the_same(
    service: Service, tap: EventTap
) -> None:
    tag = uuid.uuid4().hex[:6]
    rows = [_row(2, f"once-{tag}@example.edu")]
    chunk = await _send(service, rows)
    first = await _answer(tap, chunk)
    again = await _send(service, rows, job_id=chunk["job_id"])
    second = await _answer(tap, again)
    assert first == second and first.rows_ok == 1
    count = await sql(
        service.settings, "SELECT count(*) AS n FROM auth.users WHERE email LIKE $1", f"once-{tag}%"
    )
    assert count[0]["n"] == 1


async def test_row_errors_are_answered_and_partial_applies_the_rest(
    service: Service, tap: EventTap, admin_token: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    taken = await service.new_user(admin_token, f"holder-{tag}@example.edu", role="student")
    rows = [
        _row(2, f"ok-{tag}@example.edu"),
        _row(3, f"dup-{tag}@example.edu"),
        _row(4, f"DUP-{tag}@EXAMPLE.edu"),
        _row(5, "not-an-email"),
        _row(6, f"role-{tag}@example.edu", role="teacher"),
        _row(7, f"short-{tag}@example.edu", role="examiner", password="short"),
        _row(8, f"num-{tag}@example.edu", student_number=taken["student_number"]),
    ]
    answer = await _answer(tap, await _send(service, rows))
    assert (answer.applied, answer.rows_ok, answer.rows_failed) == (True, 1, 6)
    codes = {(e.row, e.code) for e in answer.errors}
    assert {(3, "DUPLICATE_ENTRY"), (4, "DUPLICATE_ENTRY"), (5, "EMAIL_INVALID")} <= codes
    assert {(6, "INVALID_ROLE"), (7, "PASSWORD_TOO_SHORT"), (8, "STUDENT_NUMBER_TAKEN")} <= codes
    assert all(e.value != "short" for e in answer.errors if e.code.startswith("PASSWORD"))
    assert await _user(service, f"ok-{tag}@example.edu") is not None


async def test_all_or_nothing_and_dry_run_write_nothing(service: Service, tap: EventTap) -> None:
    tag = uuid.uuid4().hex[:6]
    good, bad = _row(2, f"aon-{tag}@example.edu"), _row(3, "broken")
    aon = await _answer(tap, await _send(service, [good, bad], mode="all_or_nothing"))
    assert (aon.applied, aon.rows_ok, aon.rows_failed) == (False, 1, 1)
    dry = await _answer(tap, await _send(service, [good], dry_run=True))
    assert (dry.applied, dry.dry_run, dry.rows_ok) == (False, True, 1)
    assert await _user(service, f"aon-{tag}@example.edu") is None


async def test_only_an_admin_may_import(service: Service, tap: EventTap) -> None:
    tag = uuid.uuid4().hex[:6]
    chunk = await _send(
        service,
        [_row(2, f"x-{tag}@example.edu")],
        requester={"user_id": str(uuid.uuid4()), "role": "examiner"},
    )
    answer = await _answer(tap, chunk)
    assert (answer.applied, answer.rows_failed) == (False, 1)
    assert [(e.row, e.code) for e in answer.errors] == [(0, "FORBIDDEN")]
    assert await _user(service, f"x-{tag}@example.edu") is None


async def test_no_password_in_the_answer_or_the_outbox(service: Service, tap: EventTap) -> None:
    tag = uuid.uuid4().hex[:6]
    chunk = await _send(
        service, [_row(2, f"pw-{tag}@example.edu", role="examiner", password=SECRET)]
    )
    await _answer(tap, chunk)
    rows = await sql(service.settings, "SELECT payload FROM auth.outbox")
    assert all(SECRET not in orjson.dumps(r["payload"]).decode() for r in rows)


def test_more_than_a_thousand_rows_is_not_a_chunk() -> None:
    rows = [_row(i + 2, f"u{i}@example.edu") for i in range(1001)]
    with pytest.raises(ValueError, match="1000"):
        UserImportChunkV1.model_validate(
            {
                "job_id": str(uuid.uuid4()),
                "chunk_no": 0,
                "requested_by": {"user_id": str(uuid.uuid4()), "role": "admin"},
                "rows": rows,
            }
        )
    assert ADMIN_PASSWORD  # the admin the chunks are sent as exists (bootstrap)


async def test_an_identical_chunk_of_a_new_job_changes_nothing(
    service: Service, tap: EventTap
) -> None:
    tag = uuid.uuid4().hex[:6]
    rows = [_row(2, f"same-{tag}@example.edu"), _row(3, f"also-{tag}@example.edu", role="admin")]
    first = await _answer(tap, await _send(service, rows))
    assert (first.rows_ok, first.rows_unchanged) == (2, 0)
    for email in (f"same-{tag}@example.edu", f"also-{tag}@example.edu"):
        await tap.next("user.created", email=email)
    again = await _answer(tap, await _send(service, rows))
    assert (again.applied, again.rows_ok, again.rows_unchanged, again.rows_failed) == (
        True, 0, 2, 0,
    )  # fmt: skip
    assert (await _user(service, f"same-{tag}@example.edu"))["version"] == 1  # type: ignore[index]
    updated = await sql(
        service.settings,
        "SELECT count(*) AS n FROM auth.outbox WHERE type = 'user.updated'"
        " AND payload->>'email' LIKE $1",
        f"%-{tag}@example.edu",
    )
    assert updated[0]["n"] == 0


async def test_an_update_and_a_dry_run_of_one(service: Service, tap: EventTap) -> None:
    tag = uuid.uuid4().hex[:6]
    email = f"upd-{tag}@example.edu"
    await _answer(tap, await _send(service, [_row(2, email, role="examiner")]))
    dry = await _answer(
        tap, await _send(service, [_row(2, email, role="admin", full_name="B")], dry_run=True)
    )
    assert (dry.applied, dry.rows_ok, dry.rows_unchanged) == (False, 1, 0)
    assert (await _user(service, email))["role"] == "examiner"  # type: ignore[index]
    done = await _answer(tap, await _send(service, [_row(2, email, role="admin", full_name="B")]))
    assert (done.applied, done.rows_ok) == (True, 1)
    event = await tap.next("user.updated", email=email)
    assert (event["data"]["role"], event["data"]["full_name"], event["data"]["version"]) == (
        "admin", "B", 2,
    )  # fmt: skip


async def test_student_numbers_are_never_changed_nor_shared(
    service: Service, tap: EventTap, admin_token: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    email = f"stu-{tag}@example.edu"
    await _answer(tap, await _send(service, [_row(2, email)]))
    rows = [
        _row(2, email, student_number=f"S-other-{tag}"),
        _row(3, f"a-{tag}@example.edu", student_number=f"S-twice-{tag}"),
        _row(4, f"b-{tag}@example.edu", student_number=f"S-twice-{tag}"),
        _row(5, f"c-{tag}@example.edu", student_number=f"S-stu-{tag}"),
    ]
    answer = await _answer(tap, await _send(service, rows))
    assert (answer.applied, answer.rows_ok, answer.rows_failed) == (True, 0, 4)
    assert [(e.row, e.column, e.code) for e in answer.errors] == [
        (2, "student_number", "NOT_ALLOWED"),
        (3, "student_number", "DUPLICATE_ENTRY"),
        (4, "student_number", "DUPLICATE_ENTRY"),
        (5, "student_number", "STUDENT_NUMBER_TAKEN"),
    ]
    assert (await _user(service, email))["student_number"] == f"S-stu-{tag}"  # type: ignore[index]


async def test_the_importer_cannot_demote_themself(service: Service, tap: EventTap) -> None:
    answer = await _answer(
        tap, await _send(service, [_row(2, ADMIN_EMAIL, role="examiner", full_name="X")])
    )
    assert [(e.row, e.column, e.code) for e in answer.errors] == [(2, "role", "CONFLICT")]
    assert (await _user(service, ADMIN_EMAIL))["role"] == "admin"  # type: ignore[index]


async def test_an_admin_role_claim_of_an_unknown_user_is_refused(
    service: Service, tap: EventTap
) -> None:
    tag = uuid.uuid4().hex[:6]
    chunk = await _send(
        service,
        [_row(2, f"ghost-{tag}@example.edu")],
        requester={"user_id": str(uuid.uuid4()), "role": "admin"},
    )
    answer = await _answer(tap, chunk)
    assert [(e.row, e.code) for e in answer.errors] == [(0, "FORBIDDEN")]
    assert await _user(service, f"ghost-{tag}@example.edu") is None


async def test_passwords_reach_no_log_answer_or_error_even_when_dead_lettered(
    service: Service, tap: EventTap
) -> None:
    tag = uuid.uuid4().hex[:6]
    secret, bad = "import-log-scan-password-5d2c", "shrt-pw9"
    rows = [
        _row(2, f"logpw-{tag}@example.edu", role="examiner", password=secret),
        _row(3, f"badpw-{tag}@example.edu", role="examiner", password=bad),
    ]
    too_many = [_row(i + 2, f"big{i}-{tag}@example.edu", password=secret) for i in range(1001)]
    with capture_all_logs() as logs:
        answer = await _answer(tap, await _send(service, rows))
        await _send(service, too_many)
        dead = await _dead_letter(service)
    assert (answer.rows_ok, answer.rows_failed) == (1, 1)
    assert [(e.code, e.column, e.value) for e in answer.errors] == [
        ("PASSWORD_TOO_SHORT", "password", "")
    ]
    text = answer.model_dump_json()
    assert secret not in text and bad not in text
    assert dead["type"] == "users.import_chunk" and len(dead["data"]["rows"]) == 1001
    assert await _user(service, f"big0-{tag}@example.edu") is None
    logs.assert_free_of({"password": secret, "refused password": bad}, ARGON2_HASH)


async def _dead_letter(service: Service, timeout: float = 20) -> dict[str, Any]:
    dlq = queue_names(service.settings, USER_IMPORT_QUEUE).dlq
    connection = await aio_pika.connect(service.settings.rabbitmq_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(dlq, ensure=True)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            message = await queue.get(no_ack=True, fail=False)
            if message is not None:
                envelope: dict[str, Any] = orjson.loads(message.body)
                return envelope
            assert asyncio.get_running_loop().time() < deadline, f"nothing in {dlq}"
            await asyncio.sleep(0.1)
    finally:
        await connection.close()
