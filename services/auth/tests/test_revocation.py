"""Revoked access tokens end on auth's own port within a second (docs/adr/0011).

Before: auth refused a deactivated user (it reads its users table), but a
logged-out session, a password change's other sessions and a reused refresh
family kept their access tokens until they expired.
"""

from __future__ import annotations

import asyncio
import time

from auth_support import PASSWORD, Service, bearer, error_code

WITHIN_SECONDS = 1.0


async def refused_within(service: Service, token: str, seconds: float = WITHIN_SECONDS) -> float:
    """How long after now ``token`` started being refused (fails past ``seconds``)."""
    started = time.monotonic()
    while True:
        response = await service.client.get("/api/v1/auth/me", headers=bearer(token))
        elapsed = time.monotonic() - started
        if response.status_code == 401:
            assert error_code(response) == "AUTH_TOKEN_INVALID"
            return elapsed
        assert response.status_code == 200, response.text
        assert elapsed < seconds, f"still accepted {elapsed:.2f} s after the revocation"
        await asyncio.sleep(0.05)


async def still_accepted(service: Service, token: str) -> None:
    """``token`` is still accepted after more than a poll of revocations."""
    await asyncio.sleep(WITHIN_SECONDS)
    response = await service.client.get("/api/v1/auth/me", headers=bearer(token))
    assert response.status_code == 200, response.text


async def test_logout_ends_that_sessions_access_tokens_only(
    service: Service, admin_token: str
) -> None:
    await service.new_user(admin_token, "ann@example.edu")
    laptop = await service.tokens("ann@example.edu", PASSWORD)
    phone = await service.tokens("ann@example.edu", PASSWORD)

    out = await service.client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": laptop["refresh_token"]},
        headers=bearer(laptop["access_token"]),
    )

    assert out.status_code == 204
    await refused_within(service, laptop["access_token"])
    await still_accepted(service, phone["access_token"])


async def test_a_password_change_ends_the_other_sessions_tokens(
    service: Service, admin_token: str
) -> None:
    await service.new_user(admin_token, "ann@example.edu")
    here = await service.tokens("ann@example.edu", PASSWORD)
    elsewhere = await service.tokens("ann@example.edu", PASSWORD)

    changed = await service.client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": PASSWORD + "-new"},
        headers=bearer(here["access_token"]),
    )

    assert changed.status_code == 204, changed.text
    await refused_within(service, elsewhere["access_token"])
    await still_accepted(service, here["access_token"])


async def test_refresh_token_reuse_ends_the_familys_access_tokens(
    service: Service, admin_token: str
) -> None:
    await service.new_user(admin_token, "ann@example.edu")
    first = await service.tokens("ann@example.edu", PASSWORD)
    rotated = (await service.refresh(first["refresh_token"])).json()

    reused = await service.refresh(first["refresh_token"])

    assert error_code(reused) == "AUTH_REFRESH_REUSED"
    for token in (first["access_token"], rotated["access_token"]):
        await refused_within(service, token)


async def test_deactivation_and_role_change_end_the_users_tokens(
    service: Service, admin_token: str
) -> None:
    ann = await service.new_user(admin_token, "ann@example.edu")
    bob = await service.new_user(admin_token, "bob@example.edu")
    ann_token = await service.access_token("ann@example.edu", PASSWORD)
    bob_tokens = await service.tokens("bob@example.edu", PASSWORD)

    for user, change in ((ann, {"active": False}), (bob, {"role": "admin"})):
        response = await service.client.patch(
            f"/api/v1/users/{user['id']}", json=change, headers=bearer(admin_token)
        )
        assert response.status_code == 200, response.text

    await refused_within(service, ann_token)
    await refused_within(service, bob_tokens["access_token"])
    # Bob is not signed out: his refresh gives a token with the new role.
    fresh = await service.refresh(bob_tokens["refresh_token"])
    assert fresh.status_code == 200
    me = await service.client.get("/api/v1/auth/me", headers=bearer(fresh.json()["access_token"]))
    assert me.json()["role"] == "admin"


async def test_replicas_learn_revocations_made_on_another(
    service: Service, start_service: object, admin_token: str
) -> None:
    """Each replica polls the table: a logout on one ends the token on the other."""
    other: Service = await start_service()  # type: ignore[operator]
    await service.new_user(admin_token, "ann@example.edu")
    tokens = await service.tokens("ann@example.edu", PASSWORD)
    assert (
        await other.client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    ).status_code == 200

    await service.client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": tokens["refresh_token"]},
        headers=bearer(tokens["access_token"]),
    )

    await refused_within(other, tokens["access_token"])


async def test_a_rolled_back_change_revokes_nothing(service: Service, admin_token: str) -> None:
    """Demoting yourself is refused (409): the refusal must not end your tokens."""
    me = (await service.client.get("/api/v1/auth/me", headers=bearer(admin_token))).json()

    refused = await service.client.patch(
        f"/api/v1/users/{me['id']}", json={"role": "student"}, headers=bearer(admin_token)
    )

    assert refused.status_code in (409, 422)
    await still_accepted(service, admin_token)


async def test_the_revocations_metric_and_readiness(service: Service) -> None:
    ready = await service.client.get("/readyz")
    assert ready.json()["checks"]["revocations"]["ok"] is True
    assert await service.metric("access_token_revocations_last_sync_timestamp_seconds") > 0


async def test_unreadable_revocations_make_tokens_503_not_accepted(
    service: Service, admin_token: str
) -> None:
    """If the list cannot be trusted a token is neither accepted nor called invalid."""
    verifier = service.app.state.token_verifier
    revocations = verifier.revocations
    assert revocations is not None
    revocations._synced_at = time.monotonic() - 10_000  # stale past the limit

    response = await service.client.get("/api/v1/auth/me", headers=bearer(admin_token))
    ready = await service.client.get("/readyz")

    assert response.status_code == 503
    assert error_code(response) == "UPSTREAM_UNAVAILABLE"
    assert ready.status_code == 503
    await revocations.sync()
    assert (
        await service.client.get("/api/v1/auth/me", headers=bearer(admin_token))
    ).status_code == 200
