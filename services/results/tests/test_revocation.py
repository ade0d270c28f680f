"""Revoked access tokens end on results' own port within a second (docs/adr/0011).

Before: a deactivated admin kept changing marks of a published exam for the
rest of their token's 15 minutes. Here auth's feed is an in-memory board the
test writes to; the app polls it with the kit's job, as it polls auth.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient
from results_service.main import create_app
from results_service.settings import ResultsSettings
from results_support import JwtKeys, RevocationBoard, static_verifier

WITHIN_SECONDS = 1.0


@pytest.fixture
async def board_and_client(
    settings: ResultsSettings, jwt_keys: JwtKeys
) -> AsyncIterator[tuple[RevocationBoard, AsyncClient]]:
    board = RevocationBoard()
    app = create_app(settings)
    app.state.token_verifier = static_verifier(jwt_keys, settings, board)
    async with (
        LifespanManager(app, startup_timeout=30, shutdown_timeout=30),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://results.test") as client,
    ):
        yield board, client


async def _refused_within(client: AsyncClient, token: str) -> None:
    started = time.monotonic()
    while True:
        response = await client.get("/api/v1/exams", headers={"Authorization": f"Bearer {token}"})
        if response.status_code == 401:
            assert response.json()["error"]["code"] == "AUTH_TOKEN_INVALID"
            return
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < WITHIN_SECONDS, "still accepted after a second"
        await asyncio.sleep(0.05)


async def test_a_revoked_session_is_refused_within_a_second(
    board_and_client: tuple[RevocationBoard, AsyncClient],
    jwt_keys: JwtKeys,
    settings: ResultsSettings,
) -> None:
    board, client = board_and_client
    user, laptop, phone = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    on_laptop = jwt_keys.token(settings, user_id=user, role="admin", session_id=laptop)
    on_phone = jwt_keys.token(settings, user_id=user, role="admin", session_id=phone)
    assert (
        await client.get("/api/v1/exams", headers={"Authorization": f"Bearer {on_laptop}"})
    ).status_code == 200

    board.revoke_session(user, laptop)

    await _refused_within(client, on_laptop)
    phone_answer = await client.get(
        "/api/v1/exams", headers={"Authorization": f"Bearer {on_phone}"}
    )
    assert phone_answer.status_code == 200


async def test_a_raised_epoch_ends_the_users_older_tokens_only(
    board_and_client: tuple[RevocationBoard, AsyncClient],
    jwt_keys: JwtKeys,
    settings: ResultsSettings,
) -> None:
    """A demoted admin's old token (epoch 0) ends; the new one (epoch 1) works."""
    board, client = board_and_client
    demoted, someone_else = uuid.uuid4(), uuid.uuid4()
    old = jwt_keys.token(settings, user_id=demoted, role="admin", session_id=uuid.uuid4())
    new = jwt_keys.token(
        settings, user_id=demoted, role="examiner", session_id=uuid.uuid4(), access_epoch=1
    )
    other = jwt_keys.token(settings, user_id=someone_else, role="admin", session_id=uuid.uuid4())

    board.raise_epoch(demoted, 1)

    await _refused_within(client, old)
    for token in (new, other):
        answer = await client.get("/api/v1/exams", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200


async def test_readiness_reports_the_revocation_list(
    board_and_client: tuple[RevocationBoard, AsyncClient],
) -> None:
    _, client = board_and_client

    ready = await client.get("/readyz")

    assert ready.json()["checks"]["revocations"]["ok"] is True
