"""The services' own log files hold no password, hash or token, with every service a real process.

A write that fails in the database is provoked through the gateway (a
test-only rule on ``auth.users`` refuses one full name): the 500 is logged
with its traceback, which quoted the new user's password hash before the
kit hid SQL parameters. Tokens travel in a query string too, the way a
careless client sends them, and sign-ins and refreshes fail.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, E2E, bearer
from service_kit.testing_logs import ARGON2_HASH, secrets_in

pytestmark = pytest.mark.e2e


def _sql(e2e: E2E, statement: str) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(e2e.env["DATABASE_URL"].replace("+asyncpg", ""))
        try:
            return list(await conn.fetch(statement))
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture
def doomed_name(e2e: E2E) -> Iterator[str]:
    """A full name the users table refuses (a CHECK only this test adds, dropped after)."""
    name = f"Doomed {uuid.uuid4().hex[:8]}"
    constraint = f"test_doomed_{name[-8:]}"
    _sql(e2e, f"ALTER TABLE auth.users ADD CONSTRAINT {constraint} CHECK (full_name <> '{name}')")
    try:
        yield name
    finally:
        _sql(e2e, f"ALTER TABLE auth.users DROP CONSTRAINT {constraint}")


def test_failing_writes_and_refused_tokens_leave_no_secret_in_the_service_logs(
    e2e: E2E, admin_tokens: dict[str, str], doomed_name: str
) -> None:
    password = f"e2e-log-scan-{uuid.uuid4().hex}"
    wrong_password = f"e2e-wrong-{uuid.uuid4().hex}"
    access = admin_tokens["access_token"]
    with e2e.client() as client:
        doomed = client.post(
            "/api/v1/users",
            params={"access_token": access},
            json={
                "email": f"doomed-{uuid.uuid4().hex[:6]}@example.edu",
                "full_name": doomed_name,
                "role": "admin",
                "password": password,
            },
            headers=bearer(access),
        )
        wrong = client.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": wrong_password}
        )
        session = client.post(
            "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        ).json()
        rotated = client.post(
            "/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
        )
        reused = client.post(
            "/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
        )
        listed = client.get(
            "/api/v1/users", params={"access_token": access, "q": "x"}, headers=bearer(access)
        )
        unknown_path = client.get(f"/api/v1/nowhere?access_token={access}")

    assert doomed.status_code == 500, doomed.text
    assert (wrong.status_code, rotated.status_code, reused.status_code) == (401, 200, 401)
    assert (listed.status_code, unknown_path.status_code) == (200, 404)
    [admin] = _sql(e2e, f"SELECT password_hash FROM auth.users WHERE email = '{ADMIN_EMAIL}'")
    assert e2e.suite.log_dir is not None
    logs = "\n".join(p.read_text() for p in sorted(e2e.suite.log_dir.glob("*.log")))
    assert "unhandled error on POST /api/v1/users" in logs

    assert (
        secrets_in(
            logs,
            {
                "password": password,
                "wrong password": wrong_password,
                "admin password": ADMIN_PASSWORD,
                # Salt and digest: the parameters before them are in every hash.
                "admin password hash": "$".join(str(admin["password_hash"]).rsplit("$", 2)[1:]),
                "access token": access,
                "refresh token": session["refresh_token"],
                "rotated refresh token": rotated.json()["refresh_token"],
            },
            ARGON2_HASH,
        )
        == {}
    )
