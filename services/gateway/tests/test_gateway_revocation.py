"""Revoked access tokens end at the gateway within a second (docs/adr/0011).

The gateway polls auth's revocation feed (the fake auth here serves it, and
answers 401 to a poll without the service token it handed out), so a revoked
token is refused before any upstream is called.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx
from gateway_fakes import FakeUpstreams, GatewayProcess, SigningKey, free_port

WITHIN_SECONDS = 1.0


def _refused_within(gateway: GatewayProcess, token: str) -> None:
    started = time.monotonic()
    while True:
        response = httpx.get(
            f"{gateway.url}/api/v1/exams", headers={"Authorization": f"Bearer {token}"}
        )
        if response.status_code == 401:
            assert response.json()["error"]["code"] == "AUTH_TOKEN_INVALID"
            return
        assert response.status_code == 200, response.text
        assert time.monotonic() - started < WITHIN_SECONDS, "still accepted after a second"
        time.sleep(0.05)


def test_a_revoked_session_and_a_raised_epoch_end_tokens_at_the_gateway(
    gateway: GatewayProcess, upstreams: FakeUpstreams, signing_key: SigningKey
) -> None:
    ann, bob, session = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    ann_token = signing_key.token(sub=str(ann), sid=str(session))
    ann_other_session = signing_key.token(sub=str(ann), sid=str(uuid.uuid4()))
    bob_old = signing_key.token(sub=str(bob), sid=str(uuid.uuid4()))
    bob_new = signing_key.token(sub=str(bob), sid=str(uuid.uuid4()), access_epoch=1)
    for token in (ann_token, bob_old):
        ok = httpx.get(f"{gateway.url}/api/v1/exams", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200

    upstreams.revoke_session(ann, session)
    upstreams.raise_epoch(bob, 1)

    _refused_within(gateway, ann_token)
    _refused_within(gateway, bob_old)
    for token in (ann_other_session, bob_new):
        ok = httpx.get(f"{gateway.url}/api/v1/exams", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
    # The gateway asked for a service token as itself and polled with it.
    assert "gateway" in upstreams.service_tokens.values()


def test_without_auth_the_gateway_answers_503_not_200_nor_401(
    start_gateway: Callable[..., GatewayProcess], signing_key: SigningKey
) -> None:
    """A gateway that never loaded the revocations cannot vouch for any token."""
    dead_auth = f"http://127.0.0.1:{free_port()}"
    gateway = start_gateway(AUTH_URL=dead_auth)

    response = httpx.get(
        f"{gateway.url}/api/v1/exams", headers={"Authorization": f"Bearer {signing_key.token()}"}
    )
    ready = httpx.get(f"{gateway.url}/readyz")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert ready.status_code == 503
    assert ready.json()["checks"]["revocations"]["ok"] is False
