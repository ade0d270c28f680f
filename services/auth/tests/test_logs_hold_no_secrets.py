"""Logs never hold secrets: failing writes, refused sign-ins and token flows, every logger at DEBUG.

Writes are made to fail for real: test-only rules on ``auth.users`` refuse an
insert and an update the service sends (CHECK and UNIQUE violations answered
500 and logged with their traceback), and the store is driven into unique,
check and length violations and a value the driver cannot encode.
"""

from __future__ import annotations

import logging
import secrets
import uuid

import pytest
from auth_service.store import users as users_store
from auth_support import ADMIN_PASSWORD, PASSWORD, EventTap, Service, bearer, error_code, sql
from service_kit.db import Database, sqlstate_of
from service_kit.testing_logs import ARGON2_HASH, capture_all_logs
from sqlalchemy.exc import DBAPIError

SECRET_PASSWORD = "log-scan-password-7c1e9b"
WRONG_PASSWORD = "log-scan-wrong-guess-4f02aa"
log = logging.getLogger("auth-test.store")


async def _password_hash(service: Service, email: str) -> str:
    """The salt and digest of the user's stored hash (its parameters are in every hash)."""
    [row] = await sql(
        service.settings, "SELECT password_hash FROM auth.users WHERE email = $1", email
    )
    return "$".join(str(row["password_hash"]).rsplit("$", 2)[1:])


async def test_failing_writes_and_token_flows_through_the_api_log_no_secret(
    service: Service, admin_token: str, event_tap: EventTap
) -> None:
    # Rules the service does not know about, so that its own writes fail in the database.
    await sql(
        service.settings,
        "ALTER TABLE auth.users ADD CONSTRAINT test_doomed CHECK (full_name <> 'Doomed Write')",
    )
    await sql(
        service.settings,
        "CREATE UNIQUE INDEX test_one_active_examiner ON auth.users (role) "
        "WHERE active AND role = 'examiner'",
    )

    with capture_all_logs() as logs:
        await service.new_user(admin_token, "exa@example.edu", password=SECRET_PASSWORD)
        invited = await service.create_user(
            admin_token, email="inv@example.edu", full_name="Inv", role="examiner"
        )
        invitation = (await event_tap.next("user.invited", id=invited["id"]))["data"]["token"]
        # An insert with the new user's password hash among its values: CHECK violation
        # (from a client that also puts its token in the query string).
        doomed = await service.client.post(
            "/api/v1/users",
            params={"access_token": admin_token},
            json={
                "email": "doomed@example.edu",
                "full_name": "Doomed Write",
                "role": "admin",
                "password": SECRET_PASSWORD,
            },
            headers=bearer(admin_token),
        )
        # An update that sets a password hash: the second active examiner, UNIQUE violation.
        accept = await service.client.post(
            "/api/v1/auth/password/reset",
            json={"token": invitation, "new_password": SECRET_PASSWORD},
        )
        wrong = await service.login("exa@example.edu", WRONG_PASSWORD)
        tokens = await service.tokens("exa@example.edu", SECRET_PASSWORD)
        rotated = await service.refresh(tokens["refresh_token"])
        reused = await service.refresh(tokens["refresh_token"])
        made_up = await service.refresh("made-up-refresh-token-0f3a9c2e71d4b8")

    assert (doomed.status_code, accept.status_code) == (500, 500)
    assert error_code(wrong) == "AUTH_INVALID_CREDENTIALS"
    assert rotated.status_code == 200
    assert (error_code(reused), error_code(made_up)) == (
        "AUTH_REFRESH_REUSED",
        "AUTH_REFRESH_INVALID",
    )
    # The failures were logged, tracebacks and all: the scan has something to look at.
    assert logs.text().count("IntegrityError") >= 2
    logs.assert_free_of(
        {
            "password": SECRET_PASSWORD,
            "wrong password": WRONG_PASSWORD,
            "admin password": ADMIN_PASSWORD,
            "password hash": await _password_hash(service, "exa@example.edu"),
            "admin access token": admin_token,
            "access token": tokens["access_token"],
            "refresh token": tokens["refresh_token"],
            "rotated refresh token": rotated.json()["refresh_token"],
            "rotated access token": rotated.json()["access_token"],
            "invitation token": invitation,
        },
        ARGON2_HASH,
    )


async def test_failing_writes_in_the_store_log_no_hash_and_no_token(
    service: Service, admin_token: str
) -> None:
    await service.new_user(admin_token, "s1@example.edu", role="student", student_number="S-1")
    student = await service.new_user(
        admin_token, "s2@example.edu", role="student", student_number="S-2"
    )
    [row] = await sql(
        service.settings, "SELECT password_hash FROM auth.users WHERE id = $1", student["id"]
    )
    password_hash = str(row["password_hash"])
    tokens = await service.tokens("s2@example.edu", PASSWORD)
    db = Database(service.settings)
    failures: list[DBAPIError] = []
    try:
        with capture_all_logs() as logs:
            for change in (
                {"student_number": "S-1"},  # unique violation
                {"role": "teacher"},  # check violation: "Failing row contains (...)"
                # Over the btree index's row size even compressed (random text).
                {"student_number": secrets.token_urlsafe(4000)},
            ):
                with pytest.raises(DBAPIError) as failed:
                    async with db.transaction() as session:
                        await users_store.update_user(
                            session,
                            uuid.UUID(student["id"]),
                            password_hash=password_hash,
                            **change,
                        )
                log.error("write failed", exc_info=failed.value)
                failures.append(failed.value)
            # A programming error: the refresh token where a user id belongs.
            with pytest.raises(DBAPIError) as failed:
                async with db.read_session() as session:
                    await users_store.get_user(session, tokens["refresh_token"])  # type: ignore[arg-type]
            log.error("read failed", exc_info=failed.value)
            async with db.read_session() as session:
                await users_store.get_user(session, uuid.UUID(student["id"]))
    finally:
        await db.dispose()

    assert [sqlstate_of(f) for f in failures] == ["23505", "23514", "54000"]
    logs.assert_free_of(
        {
            "password hash": await _password_hash(service, "s2@example.edu"),
            "refresh token": tokens["refresh_token"],
        },
        ARGON2_HASH,
    )
