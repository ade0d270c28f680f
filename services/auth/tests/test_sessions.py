"""Refresh-token rotation and reuse detection, logout, and password change."""

from __future__ import annotations

import asyncio

import jwt
from auth_support import ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, Service, bearer, error_code, sql


def _sid(access_token: str) -> str:
    return str(jwt.decode(access_token, options={"verify_signature": False})["sid"])


async def test_refresh_rotates_the_token_within_the_same_session(service: Service) -> None:
    first = await service.tokens(ADMIN_EMAIL, ADMIN_PASSWORD)

    response = await service.refresh(first["refresh_token"])

    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["token_type"] == "Bearer"
    assert response.headers["cache-control"] == "no-store"
    assert _sid(second["access_token"]) == _sid(first["access_token"])
    assert (await service.refresh(second["refresh_token"])).status_code == 200


async def test_reusing_a_rotated_token_revokes_the_whole_family(service: Service) -> None:
    first = await service.tokens(ADMIN_EMAIL, ADMIN_PASSWORD)
    second = (await service.refresh(first["refresh_token"])).json()
    other_session = await service.tokens(ADMIN_EMAIL, ADMIN_PASSWORD)

    reused = await service.refresh(first["refresh_token"])

    assert reused.status_code == 401
    assert error_code(reused) == "AUTH_REFRESH_REUSED"
    # The newer token of that family is dead too; other sessions are untouched.
    after = await service.refresh(second["refresh_token"])
    assert after.status_code == 401
    assert error_code(after) == "AUTH_REFRESH_INVALID"
    assert (await service.refresh(other_session["refresh_token"])).status_code == 200


async def test_unknown_and_expired_refresh_tokens_are_invalid(service: Service) -> None:
    unknown = await service.refresh("not-a-token-we-ever-issued")
    assert unknown.status_code == 401
    assert error_code(unknown) == "AUTH_REFRESH_INVALID"

    tokens = await service.tokens(ADMIN_EMAIL, ADMIN_PASSWORD)
    await sql(
        service.settings, "UPDATE auth.refresh_tokens SET expires_at = now() - interval '1 s'"
    )
    expired = await service.refresh(tokens["refresh_token"])
    assert expired.status_code == 401
    assert error_code(expired) == "AUTH_REFRESH_INVALID"


async def test_concurrent_refresh_of_one_token_never_mints_two_live_tokens(
    service: Service,
) -> None:
    tokens = await service.tokens(ADMIN_EMAIL, ADMIN_PASSWORD)

    answers = await asyncio.gather(*(service.refresh(tokens["refresh_token"]) for _ in range(8)))

    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(200) == 1, statuses
    assert {error_code(r) for r in answers if r.status_code != 200} == {"AUTH_REFRESH_REUSED"}
    live = await sql(
        service.settings,
        """SELECT t.token_hash FROM auth.refresh_tokens t
           JOIN auth.refresh_families f ON f.id = t.family_id
           WHERE t.rotated_at IS NULL AND f.revoked_at IS NULL AND t.expires_at > now()""",
    )
    assert len(live) <= 1


async def test_refresh_fails_once_the_user_is_deactivated(
    service: Service, admin_token: str
) -> None:
    user = await service.new_user(admin_token, "leaver@example.edu")
    tokens = await service.tokens("leaver@example.edu", PASSWORD)

    await service.client.patch(
        f"/api/v1/users/{user['id']}", json={"active": False}, headers=bearer(admin_token)
    )

    response = await service.refresh(tokens["refresh_token"])
    assert response.status_code == 401
    assert error_code(response) == "AUTH_REFRESH_INVALID"
    me = await service.client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 401


async def test_logout_revokes_the_session_and_is_idempotent(service: Service) -> None:
    tokens = await service.tokens(ADMIN_EMAIL, ADMIN_PASSWORD)
    rotated = (await service.refresh(tokens["refresh_token"])).json()
    body = {"refresh_token": rotated["refresh_token"]}

    first = await service.client.post(
        "/api/v1/auth/logout", json=body, headers=bearer(rotated["access_token"])
    )
    second = await service.client.post(
        "/api/v1/auth/logout", json=body, headers=bearer(rotated["access_token"])
    )

    assert first.status_code == 204
    assert first.content == b""
    assert second.status_code == 204
    refused = await service.refresh(rotated["refresh_token"])
    assert refused.status_code == 401
    assert error_code(refused) == "AUTH_REFRESH_INVALID"


async def test_logout_needs_a_signed_in_caller_and_spares_other_users_sessions(
    service: Service, admin_token: str
) -> None:
    await service.new_user(admin_token, "eve@example.edu")
    admin = await service.tokens(ADMIN_EMAIL, ADMIN_PASSWORD)
    eve = await service.tokens("eve@example.edu", PASSWORD)
    body = {"refresh_token": admin["refresh_token"]}

    anonymous = await service.client.post("/api/v1/auth/logout", json=body)
    by_eve = await service.client.post(
        "/api/v1/auth/logout", json=body, headers=bearer(eve["access_token"])
    )

    assert anonymous.status_code == 401
    assert error_code(anonymous) == "AUTH_TOKEN_MISSING"
    assert by_eve.status_code == 204
    assert (await service.refresh(admin["refresh_token"])).status_code == 200


async def test_me_returns_the_signed_in_user(service: Service) -> None:
    token = await service.access_token(ADMIN_EMAIL, ADMIN_PASSWORD)

    response = await service.client.get("/api/v1/auth/me", headers=bearer(token))

    assert response.status_code == 200
    me = response.json()
    assert me["email"] == ADMIN_EMAIL
    assert me["role"] == "admin"
    assert me["active"] is True
    assert me["student_number"] is None
    assert me["created_at"].endswith("Z")
    assert set(me) == {"id", "email", "full_name", "role", "student_number", "active", "created_at"}


async def test_password_change_revokes_other_sessions_but_keeps_the_current_one(
    service: Service, admin_token: str
) -> None:
    await service.new_user(admin_token, "pat@example.edu")
    current = await service.tokens("pat@example.edu", PASSWORD)
    other = await service.tokens("pat@example.edu", PASSWORD)
    new_password = "a brand new password"

    response = await service.client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=bearer(current["access_token"]),
    )

    assert response.status_code == 204
    assert (await service.refresh(current["refresh_token"])).status_code == 200
    revoked = await service.refresh(other["refresh_token"])
    assert revoked.status_code == 401
    assert error_code(revoked) == "AUTH_REFRESH_INVALID"
    assert (await service.login("pat@example.edu", PASSWORD)).status_code == 401
    assert (await service.login("pat@example.edu", new_password)).status_code == 200


async def test_password_change_validates_both_passwords(service: Service, admin_token: str) -> None:
    await service.new_user(admin_token, "val@example.edu")
    token = await service.access_token("val@example.edu", PASSWORD)

    wrong = await service.client.post(
        "/api/v1/auth/password",
        json={"current_password": "not my password", "new_password": "long enough new"},
        headers=bearer(token),
    )
    short = await service.client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=bearer(token),
    )

    assert wrong.status_code == 422
    assert wrong.json()["error"]["details"] == [
        {
            "field": "current_password",
            "code": "PASSWORD_INCORRECT",
            "message": wrong.json()["error"]["details"][0]["message"],
        }
    ]
    assert short.status_code == 422
    assert short.json()["error"]["code"] == "VALIDATION_FAILED"
    assert [(d["field"], d["code"]) for d in short.json()["error"]["details"]] == [
        ("new_password", "PASSWORD_TOO_SHORT")
    ]
    assert (await service.login("val@example.edu", PASSWORD)).status_code == 200
