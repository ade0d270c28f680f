"""POST /api/v1/auth/login: one answer for every kind of wrong, tokens for the right one."""

from __future__ import annotations

import asyncio

import jwt
from auth_service.settings import AuthSettings
from auth_support import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PASSWORD,
    Service,
    StartService,
    bearer,
    error_code,
    sql,
)


async def test_login_returns_a_token_pair_that_must_not_be_cached(service: Service) -> None:
    response = await service.login(ADMIN_EMAIL, ADMIN_PASSWORD)

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert len(body["refresh_token"]) >= 43  # 32 random bytes, base64url
    assert response.headers["cache-control"] == "no-store"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["role"] == "admin"
    assert claims["email"] == ADMIN_EMAIL
    assert {"sub", "iss", "aud", "iat", "exp", "jti", "sid"} <= claims.keys()
    assert claims["exp"] - claims["iat"] == 900


async def test_login_compares_emails_case_insensitively(service: Service) -> None:
    response = await service.login("  ROOT@Example.EDU ", ADMIN_PASSWORD)

    assert response.status_code == 200, response.text


async def test_wrong_password_unknown_email_and_inactive_user_get_the_same_401(
    service: Service, admin_token: str
) -> None:
    user = await service.new_user(admin_token, "ann@example.edu")
    await service.client.patch(
        f"/api/v1/users/{user['id']}", json={"active": False}, headers=bearer(admin_token)
    )
    invited = await service.create_user(
        admin_token, email="inv@example.edu", full_name="Inv", role="examiner"
    )
    assert invited["active"] is False

    answers = [
        await service.login(ADMIN_EMAIL, "wrong password!"),
        await service.login("nobody@example.edu", PASSWORD),
        await service.login("ann@example.edu", PASSWORD),  # right password, deactivated
        await service.login("inv@example.edu", PASSWORD),  # invited, no password yet
    ]

    for response in answers:
        assert response.status_code == 401
        assert error_code(response) == "AUTH_INVALID_CREDENTIALS"
        assert response.json()["error"]["message"] == answers[0].json()["error"]["message"]
        assert response.headers["www-authenticate"] == "Bearer"


async def test_unknown_email_still_costs_one_password_verification(service: Service) -> None:
    before = await service.metric("auth_password_hash_duration_seconds_count", operation="verify")

    response = await service.login("nobody@example.edu", PASSWORD)

    after = await service.metric("auth_password_hash_duration_seconds_count", operation="verify")
    assert response.status_code == 401
    assert after == before + 1


async def test_login_outcomes_are_counted(service: Service) -> None:
    ok = await service.metric("auth_login_attempts_total", outcome="success")
    bad = await service.metric("auth_login_attempts_total", outcome="invalid_credentials")

    await service.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    await service.login(ADMIN_EMAIL, "wrong password!")

    assert await service.metric("auth_login_attempts_total", outcome="success") == ok + 1
    assert (
        await service.metric("auth_login_attempts_total", outcome="invalid_credentials") == bad + 1
    )


async def test_login_rehashes_a_password_stored_with_old_parameters(
    start_service: StartService, settings: AuthSettings
) -> None:
    old = await start_service(argon2_memory_kib=64, argon2_time_cost=1)
    await old.tokens(ADMIN_EMAIL, ADMIN_PASSWORD)
    [before] = await sql(settings, "SELECT password_hash FROM auth.users")
    assert "$m=64,t=1,p=1$" in before["password_hash"]

    new = await start_service(argon2_memory_kib=128, argon2_time_cost=2)
    await new.tokens(ADMIN_EMAIL, ADMIN_PASSWORD)

    [after] = await sql(settings, "SELECT password_hash FROM auth.users")
    assert "$m=128,t=2,p=1$" in after["password_hash"]
    assert (await new.login(ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200


async def test_malformed_login_body_is_a_bad_request(service: Service) -> None:
    response = await service.client.post(
        "/api/v1/auth/login", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert error_code(response) == "BAD_REQUEST"


async def test_concurrent_logins_during_a_rehash_all_succeed(
    start_service: StartService, settings: AuthSettings
) -> None:
    await start_service(argon2_memory_kib=64, argon2_time_cost=1)
    new = await start_service(argon2_memory_kib=128, argon2_time_cost=1)

    answers = await asyncio.gather(*(new.login(ADMIN_EMAIL, ADMIN_PASSWORD) for _ in range(6)))

    assert [r.status_code for r in answers] == [200] * 6
    [row] = await sql(settings, "SELECT password_hash FROM auth.users")
    assert "$m=128,t=1,p=1$" in row["password_hash"]
