"""Auth and users through the gateway, with every service a real process."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import httpx
import pytest
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, E2E, bearer

pytestmark = pytest.mark.e2e


def login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["request_id"] == response.headers["x-request-id"]
    return body["error"]  # type: ignore[no-any-return]


def test_admin_logs_in_and_sees_themself(e2e: E2E, admin_tokens: dict[str, str]) -> None:
    assert admin_tokens["token_type"] == "Bearer"
    assert int(admin_tokens["expires_in"]) > 0
    with e2e.client() as client:
        me = client.get("/api/v1/auth/me", headers=bearer(admin_tokens["access_token"]))
    assert me.status_code == 200
    user = me.json()
    assert user["email"] == ADMIN_EMAIL and user["role"] == "admin" and user["active"] is True
    assert set(user) >= {
        "id",
        "email",
        "full_name",
        "role",
        "student_number",
        "active",
        "created_at",
    }


def test_wrong_password_and_unknown_email_get_the_same_answer(e2e: E2E) -> None:
    with e2e.client() as client:
        wrong = login(client, ADMIN_EMAIL.upper(), "not-the-password")
        unknown = login(client, f"nobody-{uuid.uuid4().hex[:6]}@example.edu", "whatever-password")
    assert_error(wrong, 401, "AUTH_INVALID_CREDENTIALS")
    assert_error(unknown, 401, "AUTH_INVALID_CREDENTIALS")
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


def test_email_is_case_insensitive(e2e: E2E) -> None:
    with e2e.client() as client:
        assert login(client, ADMIN_EMAIL.upper(), ADMIN_PASSWORD).status_code == 200


def test_refresh_rotates_and_reuse_revokes_the_family(e2e: E2E) -> None:
    with e2e.client() as client:
        first = login(client, ADMIN_EMAIL, ADMIN_PASSWORD).json()
        second = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert second.status_code == 200, second.text
        rotated = second.json()
        assert rotated["refresh_token"] != first["refresh_token"]
        reused = client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert_error(reused, 401, "AUTH_REFRESH_REUSED")
        # The reuse revoked the whole family: the newest token is dead too.
        after = client.post(
            "/api/v1/auth/refresh", json={"refresh_token": rotated["refresh_token"]}
        )
        assert after.status_code == 401
        bogus = client.post("/api/v1/auth/refresh", json={"refresh_token": "made-up"})
        assert_error(bogus, 401, "AUTH_REFRESH_INVALID")


def test_logout_ends_the_session(e2e: E2E) -> None:
    with e2e.client() as client:
        tokens = login(client, ADMIN_EMAIL, ADMIN_PASSWORD).json()
        out = client.post(
            "/api/v1/auth/logout",
            json={"refresh_token": tokens["refresh_token"]},
            headers=bearer(tokens["access_token"]),
        )
        assert out.status_code == 204
        again = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert again.status_code == 401


def test_admin_manages_users_and_roles_are_enforced(e2e: E2E, admin_tokens: dict[str, str]) -> None:
    admin = bearer(admin_tokens["access_token"])
    suffix = uuid.uuid4().hex[:8]
    with e2e.client() as client:
        created = client.post(
            "/api/v1/users",
            headers=admin,
            json={
                "email": f"Student.{suffix}@Example.edu",
                "full_name": "Ada Student",
                "role": "student",
                "student_number": f"S{suffix}",
                "password": "student-password-1",
            },
        )
        assert created.status_code == 201, created.text
        student = created.json()
        assert student["student_number"] == f"S{suffix}" and student["active"] is True
        dup = client.post(
            "/api/v1/users",
            headers=admin,
            json={"email": f"student.{suffix}@example.edu", "full_name": "X", "role": "examiner"},
        )
        assert_error(dup, 409, "USER_EMAIL_TAKEN")
        dup_number = client.post(
            "/api/v1/users",
            headers=admin,
            json={
                "email": f"other.{suffix}@example.edu",
                "full_name": "Y",
                "role": "student",
                "student_number": f"S{suffix}",
            },
        )
        assert_error(dup_number, 409, "STUDENT_NUMBER_TAKEN")
        invalid = client.post(
            "/api/v1/users",
            headers=admin,
            json={"email": "not-an-email", "full_name": "", "role": "wizard", "password": "short"},
        )
        error = assert_error(invalid, 422, "VALIDATION_FAILED")
        assert {d["field"] for d in error["details"]} >= {"email", "role", "password"}  # type: ignore[union-attr,index]

        listed = client.get("/api/v1/users", headers=admin, params={"role": "student", "q": suffix})
        assert listed.status_code == 200
        assert [u["id"] for u in listed.json()["items"]] == [student["id"]]
        assert listed.json()["next_cursor"] is None

        patched = client.patch(
            f"/api/v1/users/{student['id']}", headers=admin, json={"full_name": "Ada Lovelace"}
        )
        assert patched.status_code == 200 and patched.json()["full_name"] == "Ada Lovelace"
        missing = client.get(f"/api/v1/users/{uuid.uuid4()}", headers=admin)
        assert_error(missing, 404, "NOT_FOUND")

        student_tokens = login(client, f"student.{suffix}@example.edu", "student-password-1").json()
        as_student = bearer(student_tokens["access_token"])
        # A spoofed identity header does not make a student an admin.
        spoofed = client.get(
            "/api/v1/users",
            headers={
                **as_student,
                "X-User-Role": "admin",
                "X-User-Id": admin_tokens["access_token"],
            },
        )
        assert_error(spoofed, 403, "FORBIDDEN")

        deactivated = client.patch(
            f"/api/v1/users/{student['id']}", headers=admin, json={"active": False}
        )
        assert deactivated.status_code == 200 and deactivated.json()["active"] is False
        assert_error(
            login(client, f"student.{suffix}@example.edu", "student-password-1"),
            401,
            "AUTH_INVALID_CREDENTIALS",
        )


def test_password_change_revokes_other_sessions(e2e: E2E, admin_tokens: dict[str, str]) -> None:
    suffix = uuid.uuid4().hex[:8]
    email = f"examiner.{suffix}@example.edu"
    with e2e.client() as client:
        client.post(
            "/api/v1/users",
            headers=bearer(admin_tokens["access_token"]),
            json={
                "email": email,
                "full_name": "Eve",
                "role": "examiner",
                "password": "first-password-1",
            },
        ).raise_for_status()
        here = login(client, email, "first-password-1").json()
        elsewhere = login(client, email, "first-password-1").json()
        changed = client.post(
            "/api/v1/auth/password",
            headers=bearer(here["access_token"]),
            json={"current_password": "first-password-1", "new_password": "second-password-2"},
        )
        assert changed.status_code == 204, changed.text
        other = client.post(
            "/api/v1/auth/refresh", json={"refresh_token": elsewhere["refresh_token"]}
        )
        assert other.status_code == 401
        mine = client.post("/api/v1/auth/refresh", json={"refresh_token": here["refresh_token"]})
        assert mine.status_code == 200
        assert login(client, email, "second-password-2").status_code == 200


def test_login_limit_per_email(e2e: E2E, admin_tokens: dict[str, str]) -> None:
    email = f"limited.{uuid.uuid4().hex[:8]}@example.edu"
    with e2e.client() as client:
        client.post(
            "/api/v1/users",
            headers=bearer(admin_tokens["access_token"]),
            json={
                "email": email,
                "full_name": "L",
                "role": "examiner",
                "password": "right-password-1",
            },
        ).raise_for_status()
        for _ in range(5):
            assert login(client, email, "wrong-password-1").status_code == 401
        limited = login(client, email, "right-password-1")
        assert_error(limited, 429, "AUTH_RATE_LIMITED")
        assert int(limited.headers["Retry-After"]) > 0


def _reset_tokens(e2e: E2E, email: str) -> list[str]:
    """The tokens of the reset events auth wrote for ``email`` (its outbox), oldest first."""

    async def fetch() -> list[str]:
        url = e2e.env["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(url)
        try:
            rows = await connection.fetch(
                "SELECT payload->>'token' AS token FROM auth.outbox "
                "WHERE type = 'user.password_reset_requested' AND payload->>'email' = $1 "
                "ORDER BY occurred_at",
                email,
            )
        finally:
            await connection.close()
        return [str(r["token"]) for r in rows]

    return asyncio.run(fetch())


def test_forgotten_password_needs_no_token_and_the_reset_link_works_once(
    e2e: E2E, admin_tokens: dict[str, str]
) -> None:
    email = f"forgot.{uuid.uuid4().hex[:8]}@example.edu"
    with e2e.client() as client:
        client.post(
            "/api/v1/users",
            headers=bearer(admin_tokens["access_token"]),
            json={
                "email": email,
                "full_name": "F",
                "role": "examiner",
                "password": "old-password-1",
            },
        ).raise_for_status()
        session = login(client, email, "old-password-1").json()
        unknown = client.post("/api/v1/auth/password/forgot", json={"email": f"x{email}"})
        known = client.post("/api/v1/auth/password/forgot", json={"email": email})
        assert (unknown.status_code, unknown.content) == (known.status_code, known.content)
        assert known.status_code == 202
        # The token is written just after the answer (its timing must tell nothing).
        deadline = time.monotonic() + 10
        while not (tokens := _reset_tokens(e2e, email)):
            assert time.monotonic() < deadline, "no user.password_reset_requested event"
            time.sleep(0.05)
        assert _reset_tokens(e2e, f"x{email}") == []
        body = {"token": tokens[0], "new_password": "new-password-1"}

        assert client.post("/api/v1/auth/password/reset", json=body).status_code == 204
        again = client.post("/api/v1/auth/password/reset", json=body)

        assert_error(again, 422, "VALIDATION_FAILED")
        assert login(client, email, "new-password-1").status_code == 200
        old = client.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]})
        assert_error(old, 401, "AUTH_REFRESH_INVALID")


def test_oversized_body_is_refused_before_the_upstream(e2e: E2E) -> None:
    with e2e.client() as client:
        response = client.post(
            "/api/v1/auth/login",
            content=b'{"email": "' + b"a" * (1024 * 1024 + 10) + b'"}',
            headers={"content-type": "application/json"},
        )
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_internal_and_metrics_paths_are_not_routed(e2e: E2E, admin_tokens: dict[str, str]) -> None:
    with e2e.client() as client:
        for path in (
            "/internal/users/x",
            "/api/v1/internal/users",
            "/metrics",
            "/api/v1/auth/../../internal/students/x",
        ):
            response = client.get(path, headers=bearer(admin_tokens["access_token"]))
            assert response.status_code in (400, 404), (path, response.status_code)


def test_request_id_is_echoed(e2e: E2E) -> None:
    with e2e.client() as client:
        response = client.get("/healthz", headers={"X-Request-ID": "e2e-trace-1"})
    assert response.headers["x-request-id"] == "e2e-trace-1"


def test_openapi_is_merged_from_upstreams(e2e: E2E) -> None:
    with e2e.client() as client:
        spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert "/api/v1/auth/login" in paths
    assert not any(p.startswith("/internal") for p in paths)


def test_access_token_expires_in_the_configured_time(admin_tokens: dict[str, str]) -> None:
    import jwt

    claims = jwt.decode(admin_tokens["access_token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == int(admin_tokens["expires_in"])
    assert claims["exp"] > time.time()
    assert {"sub", "role", "email", "iss", "aud", "iat", "exp", "jti"} <= set(claims)
