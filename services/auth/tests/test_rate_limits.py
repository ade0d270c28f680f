"""Login limits: failures per email, attempts per client address, and Redis outages."""

from __future__ import annotations

from auth_support import ADMIN_EMAIL, ADMIN_PASSWORD, StartService, error_code


async def test_failures_per_email_are_limited_with_retry_after(
    start_service: StartService,
) -> None:
    service = await start_service(login_max_failures_per_email=3)
    counted = await service.metric("auth_login_attempts_total", outcome="rate_limited_email")
    for _ in range(3):
        assert (await service.login(ADMIN_EMAIL, "wrong password!")).status_code == 401

    refused = await service.login(ADMIN_EMAIL, ADMIN_PASSWORD)  # even the right password

    assert refused.status_code == 429
    assert error_code(refused) == "AUTH_RATE_LIMITED"
    assert 0 < int(refused.headers["retry-after"]) <= 900
    assert await service.metric("auth_login_attempts_total", outcome="rate_limited_email") == (
        counted + 1
    )
    # Another email is not affected, and the limit counts emails case-insensitively.
    assert (await service.login("other@example.edu", "x" * 12)).status_code == 401
    assert (await service.login("ROOT@example.edu", ADMIN_PASSWORD)).status_code == 429


async def test_a_successful_login_clears_the_failures_of_its_email(
    start_service: StartService,
) -> None:
    service = await start_service(login_max_failures_per_email=3)
    for _ in range(2):
        await service.login(ADMIN_EMAIL, "wrong password!")
    assert (await service.login(ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200

    for _ in range(2):
        assert (await service.login(ADMIN_EMAIL, "wrong password!")).status_code == 401
    assert (await service.login(ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200


async def test_attempts_per_client_address_are_limited_by_forwarded_for(
    start_service: StartService,
) -> None:
    service = await start_service(login_max_attempts_per_ip=4, login_max_failures_per_email=100)
    client = {"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}
    for _ in range(4):
        response = await service.login(ADMIN_EMAIL, ADMIN_PASSWORD, **client)
        assert response.status_code == 200

    refused = await service.login(ADMIN_EMAIL, ADMIN_PASSWORD, **client)

    assert refused.status_code == 429
    assert error_code(refused) == "AUTH_RATE_LIMITED"
    assert 0 < int(refused.headers["retry-after"]) <= 60
    other_client = await service.login(
        ADMIN_EMAIL, ADMIN_PASSWORD, **{"X-Forwarded-For": "198.51.100.1"}
    )
    assert other_client.status_code == 200


async def test_forwarded_for_is_ignored_when_not_trusted(start_service: StartService) -> None:
    service = await start_service(login_max_attempts_per_ip=3, trust_forwarded_for=False)
    for n in range(3):
        response = await service.login(
            ADMIN_EMAIL, ADMIN_PASSWORD, **{"X-Forwarded-For": f"203.0.113.{n}"}
        )
        assert response.status_code == 200

    # Every attempt came from the same socket peer, whatever the header claims.
    refused = await service.login(ADMIN_EMAIL, ADMIN_PASSWORD, **{"X-Forwarded-For": "192.0.2.9"})
    assert refused.status_code == 429


async def test_login_still_works_when_redis_is_down(start_service: StartService) -> None:
    # Nothing listens on port 1: every Redis call fails at once.
    service = await start_service(redis_url="redis://127.0.0.1:1/0", login_max_failures_per_email=1)

    for _ in range(3):
        assert (await service.login(ADMIN_EMAIL, "wrong password!")).status_code == 401
    response = await service.login(ADMIN_EMAIL, ADMIN_PASSWORD)

    assert response.status_code == 200
    assert await service.metric("auth_login_limits_unavailable_total") >= 4
    # Redis is reported, but sign-ins work without it, so auth stays in rotation.
    ready = await service.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["redis"] == {
        "ok": False,
        "ms": ready.json()["checks"]["redis"]["ms"],
        "error": "ConnectionError",
        "critical": False,
    }
