"""Opening the session of a login: only for the user exactly as their password was verified.

The window between the Argon2 verify and the statement that opens the session
is made deterministic here: the app's password verification is wrapped so
that, right after it, the test changes the user the way a concurrent request
would (committed, or still running). Everything else is the real service on
the real database.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import asyncpg
import jwt
import pytest
from auth_service.domain.passwords import Verification
from auth_service.hashing import PasswordHashing
from auth_support import PASSWORD, Service, bearer, error_code, sql

AfterVerify = Callable[[], Awaitable[None]]


@pytest.fixture
def after_first_verify(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[AfterVerify]]:
    """Put a coroutine function in the list: it runs once, right after the next verify."""
    pending: list[AfterVerify] = []
    original = PasswordHashing.verify

    async def verify_then_interfere(
        self: PasswordHashing, encoded: str | None, password: str, *, operation: str | None = None
    ) -> Verification:
        verification = await original(self, encoded, password, operation=operation)
        if pending:
            await pending.pop()()
        return verification

    monkeypatch.setattr(PasswordHashing, "verify", verify_then_interfere)
    yield pending


async def examiner(service: Service, admin_token: str, email: str) -> dict[str, Any]:
    return await service.new_user(admin_token, email)


async def families_of(service: Service, user_id: str) -> int:
    [row] = await sql(
        service.settings,
        "SELECT count(*) AS n FROM auth.refresh_families WHERE user_id = $1::uuid",
        user_id,
    )
    return int(row["n"])


async def test_a_deactivation_committed_after_the_verify_refuses_the_login(
    service: Service, admin_token: str, after_first_verify: list[AfterVerify]
) -> None:
    user = await examiner(service, admin_token, "ann@example.edu")

    async def deactivate() -> None:
        await sql(
            service.settings, "UPDATE auth.users SET active = false WHERE id = $1::uuid", user["id"]
        )

    after_first_verify.append(deactivate)
    response = await service.login("ann@example.edu", PASSWORD)

    assert response.status_code == 401
    assert error_code(response) == "AUTH_INVALID_CREDENTIALS"
    assert await families_of(service, user["id"]) == 0


async def test_a_password_change_committed_after_the_verify_refuses_the_old_password(
    service: Service, admin_token: str, after_first_verify: list[AfterVerify]
) -> None:
    user = await examiner(service, admin_token, "ann@example.edu")
    [admin] = await sql(
        service.settings, "SELECT password_hash FROM auth.users WHERE role = 'admin'"
    )

    async def change_password() -> None:
        # Any other valid hash: the admin's, whose password is not PASSWORD.
        await sql(
            service.settings,
            "UPDATE auth.users SET password_hash = $2 WHERE id = $1::uuid",
            user["id"],
            admin["password_hash"],
        )

    after_first_verify.append(change_password)
    response = await service.login("ann@example.edu", PASSWORD)

    # The session was refused, the new hash verified in a second round, and failed.
    assert response.status_code == 401
    assert error_code(response) == "AUTH_INVALID_CREDENTIALS"
    assert await families_of(service, user["id"]) == 0


async def test_a_deactivation_still_running_at_session_open_is_waited_for_and_wins(
    service: Service, admin_token: str, after_first_verify: list[AfterVerify]
) -> None:
    user = await examiner(service, admin_token, "ann@example.edu")
    admin_connection = await asyncpg.connect(service.settings.database_url.replace("+asyncpg", ""))
    deactivation = admin_connection.transaction()

    async def start_deactivating() -> None:
        await deactivation.start()
        await admin_connection.execute(
            "UPDATE auth.users SET active = false WHERE id = $1::uuid", user["id"]
        )

    try:
        after_first_verify.append(start_deactivating)
        login = asyncio.create_task(service.login("ann@example.edu", PASSWORD))
        await asyncio.sleep(0.5)
        assert not login.done(), "the session opened under a user row being changed"

        await deactivation.commit()
        response = await asyncio.wait_for(login, 10)
    finally:
        await admin_connection.close()

    assert response.status_code == 401
    assert await families_of(service, user["id"]) == 0


async def test_the_session_carries_the_user_as_locked_at_open(
    service: Service, admin_token: str, after_first_verify: list[AfterVerify]
) -> None:
    # A change that keeps the account usable (here: a promotion) does not stop
    # the login, and the access token says what the row says now.
    user = await examiner(service, admin_token, "ann@example.edu")

    async def promote() -> None:
        await sql(
            service.settings, "UPDATE auth.users SET role = 'admin' WHERE id = $1::uuid", user["id"]
        )

    after_first_verify.append(promote)
    tokens = await service.tokens("ann@example.edu", PASSWORD)

    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["role"] == "admin"
    me = await service.client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.json()["role"] == "admin"


async def test_login_stores_its_refresh_token_hashed_in_a_new_family(
    service: Service, admin_token: str
) -> None:
    user = await examiner(service, admin_token, "ann@example.edu")

    tokens = await service.tokens("ann@example.edu", PASSWORD)

    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    [row] = await sql(
        service.settings,
        """SELECT t.token_hash, f.id::text AS family_id, f.user_id::text AS user_id,
                  f.revoked_at, t.rotated_at,
                  extract(epoch FROM t.expires_at - t.issued_at) AS ttl
           FROM auth.refresh_tokens t JOIN auth.refresh_families f ON f.id = t.family_id
           WHERE f.user_id = $1::uuid""",
        user["id"],
    )
    assert bytes(row["token_hash"]) == hashlib.sha256(tokens["refresh_token"].encode()).digest()
    assert row["family_id"] == claims["sid"]
    assert row["revoked_at"] is None and row["rotated_at"] is None
    assert float(row["ttl"]) == pytest.approx(service.settings.refresh_token_ttl_seconds, abs=2)
    assert (await service.refresh(tokens["refresh_token"])).status_code == 200
