"""Forgotten passwords: POST /auth/password/forgot issues a reset token, /password/reset takes it.

The answer is 202 whatever the address; an active or invited account gets one
``user.password_reset_requested`` event (with the raw token, written with the
token's hash in one transaction), anybody else nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta
from typing import Any

import httpx
from auth_service.contracts import UserInvitedV1, UserPasswordResetRequestedV1
from auth_service.main import SERVICE
from auth_support import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PASSWORD,
    EventTap,
    Service,
    StartService,
    bearer,
    error_code,
    sql,
)
from service_kit.testing_logs import capture_all_logs
from test_revocation import refused_within

RESET_REQUESTED = "user.password_reset_requested"
NEW_PASSWORD = "a brand new password"


async def _forgot(service: Service, email: str, **headers: str) -> httpx.Response:
    return await service.client.post(
        "/api/v1/auth/password/forgot", json={"email": email}, headers=headers
    )


async def _reset(service: Service, token: str, password: str = NEW_PASSWORD) -> httpx.Response:
    return await service.client.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": password}
    )


def _token_invalid(response: httpx.Response) -> bool:
    if response.status_code != 422:
        return False
    details = response.json()["error"]["details"]
    return [(d["field"], d["code"]) for d in details] == [("token", "TOKEN_INVALID")]


async def _reset_events(service: Service, user_id: str | None = None) -> list[dict[str, Any]]:
    """The payloads of the reset events in the outbox (of one user), oldest first."""
    rows = await sql(
        service.settings,
        "SELECT payload FROM auth.outbox WHERE type = $1 ORDER BY occurred_at",
        RESET_REQUESTED,
    )
    payloads = [UserPasswordResetRequestedV1.model_validate_json(r["payload"]) for r in rows]
    return [p.model_dump(mode="json") for p in payloads if user_id is None or str(p.id) == user_id]


async def _reset_token(service: Service, email: str) -> str:
    """Asks for a reset of ``email`` and returns the token of the event it wrote."""
    response = await _forgot(service, email)
    assert response.status_code == 202, response.text
    [*_, newest] = await _reset_events(service)
    assert newest["email"] == email
    return str(newest["token"])


async def _deactivate(service: Service, admin_token: str, user_id: str) -> None:
    response = await service.client.patch(
        f"/api/v1/users/{user_id}", json={"active": False}, headers=bearer(admin_token)
    )
    assert response.status_code == 200, response.text


async def test_the_answer_is_202_alike_and_only_an_existing_account_gets_an_event(
    service: Service, admin_token: str
) -> None:
    issued = await service.metric("auth_password_reset_requests_total", outcome="issued")
    not_issued = await service.metric("auth_password_reset_requests_total", outcome="not_issued")
    active = await service.new_user(admin_token, "active@example.edu")
    deactivated = await service.new_user(admin_token, "gone@example.edu")
    await _deactivate(service, admin_token, deactivated["id"])
    # Invited, then deactivated before taking the invitation: no way back in either.
    withdrawn = await service.create_user(
        admin_token, email="withdrawn@example.edu", full_name="W", role="examiner"
    )
    await _deactivate(service, admin_token, withdrawn["id"])

    answers = [
        await _forgot(service, email)
        for email in (
            "nobody@example.edu",
            "gone@example.edu",
            "withdrawn@example.edu",
            "Active@Example.edu",  # case-insensitive, like sign-in
        )
    ]

    assert {(a.status_code, a.content) for a in answers} == {(202, b"")}
    assert len({tuple(sorted(a.headers.keys())) for a in answers}) == 1
    events = await _reset_events(service)
    assert [(e["id"], e["email"], e["active"]) for e in events] == [
        (active["id"], "active@example.edu", True)
    ]
    assert events[0]["full_name"] == active["full_name"]
    assert await service.metric("auth_password_reset_requests_total", outcome="issued") == (
        issued + 1
    )
    assert await service.metric("auth_password_reset_requests_total", outcome="not_issued") == (
        not_issued + 3
    )
    [row] = await sql(
        service.settings,
        "SELECT token_hash, purpose, expires_at - created_at AS ttl FROM auth.invitations "
        "WHERE user_id = $1",
        uuid.UUID(active["id"]),
    )
    # Only the hash is stored; the raw token travels in the event alone.
    assert bytes(row["token_hash"]) == hashlib.sha256(events[0]["token"].encode()).digest()
    assert (row["purpose"], row["ttl"]) == ("password_reset", timedelta(seconds=3600))


async def test_the_event_reaches_rabbitmq_with_the_token_and_its_expiry(
    service: Service, admin_token: str, event_tap: EventTap
) -> None:
    user = await service.new_user(admin_token, "mq@example.edu", role="student")

    assert (await _forgot(service, "mq@example.edu")).status_code == 202
    envelope = await event_tap.next(RESET_REQUESTED, id=user["id"])

    assert (envelope["version"], envelope["producer"]) == (1, "auth")
    assert envelope["_amqp"]["routing_key"] == RESET_REQUESTED
    data = UserPasswordResetRequestedV1.model_validate(envelope["data"])
    assert data.model_dump(mode="json", exclude={"version", "token", "expires_at"}) == user
    assert envelope["data"]["expires_at"].endswith("Z")
    assert len(data.token) >= 43


async def test_the_reset_token_works_once_and_signs_out_every_session(
    service: Service, admin_token: str
) -> None:
    await service.new_user(admin_token, "once@example.edu")
    first = await service.tokens("once@example.edu", PASSWORD)
    second = await service.tokens("once@example.edu", PASSWORD)
    token = await _reset_token(service, "once@example.edu")

    assert (await _reset(service, token)).status_code == 204

    assert (await service.login("once@example.edu", NEW_PASSWORD)).status_code == 200
    assert (await service.login("once@example.edu", PASSWORD)).status_code == 401
    for old in (first, second):
        refused = await service.refresh(old["refresh_token"])
        assert (refused.status_code, error_code(refused)) == (401, "AUTH_REFRESH_INVALID")
        await refused_within(service, old["access_token"])
    # Single use: the same token again is refused, and the password stays.
    assert _token_invalid(await _reset(service, token, "yet another password"))
    assert (await service.login("once@example.edu", NEW_PASSWORD)).status_code == 200


async def test_a_newer_request_voids_the_older_token(service: Service, admin_token: str) -> None:
    await service.new_user(admin_token, "twice@example.edu")
    older = await _reset_token(service, "twice@example.edu")
    newer = await _reset_token(service, "twice@example.edu")

    assert older != newer
    assert _token_invalid(await _reset(service, older))
    assert (await _reset(service, newer)).status_code == 204


async def test_an_expired_reset_token_is_refused(start_service: StartService) -> None:
    service = await start_service(password_reset_ttl_seconds=120)
    admin_token = await service.access_token(ADMIN_EMAIL, ADMIN_PASSWORD)
    user = await service.new_user(admin_token, "late@example.edu")
    token = await _reset_token(service, "late@example.edu")
    [row] = await sql(
        service.settings,
        "SELECT expires_at - created_at AS ttl FROM auth.invitations WHERE user_id = $1",
        uuid.UUID(user["id"]),
    )
    assert row["ttl"] == timedelta(seconds=120)

    await sql(
        service.settings,
        "UPDATE auth.invitations SET expires_at = now() - interval '1 s' WHERE user_id = $1",
        uuid.UUID(user["id"]),
    )

    assert _token_invalid(await _reset(service, token))
    assert (await service.login("late@example.edu", PASSWORD)).status_code == 200


async def test_an_invited_user_is_activated_by_a_reset_token(
    service: Service, admin_token: str, event_tap: EventTap
) -> None:
    user = await service.create_user(
        admin_token, email="invited@example.edu", full_name="Invited", role="examiner"
    )
    invitation = (await event_tap.next("user.invited", id=user["id"]))["data"]["token"]
    # Expired invitations count too: asking for a reset is how their users get a new link.
    await sql(
        service.settings,
        "UPDATE auth.invitations SET expires_at = now() - interval '1 s' WHERE user_id = $1",
        uuid.UUID(user["id"]),
    )
    token = await _reset_token(service, "invited@example.edu")
    [event] = await _reset_events(service, user["id"])
    assert event["active"] is False

    assert (await _reset(service, token)).status_code == 204

    assert (await service.login("invited@example.edu", NEW_PASSWORD)).status_code == 200
    shown = await service.client.get(f"/api/v1/users/{user['id']}", headers=bearer(admin_token))
    assert shown.json()["active"] is True
    activated = await event_tap.next("user.updated", id=user["id"])
    assert (activated["data"]["active"], activated["data"]["version"]) == (True, 2)
    # The invitation cannot set the password again.
    await sql(
        service.settings,
        "UPDATE auth.invitations SET expires_at = now() + interval '1 day' WHERE user_id = $1",
        uuid.UUID(user["id"]),
    )
    assert _token_invalid(await _reset(service, invitation))


async def test_a_reset_request_leaves_an_invitation_usable(
    service: Service, admin_token: str, event_tap: EventTap
) -> None:
    # Anybody may ask for a reset of any address: that must not withdraw an invitation.
    user = await service.create_user(
        admin_token, email="keep@example.edu", full_name="Keep", role="examiner"
    )
    invitation = (await event_tap.next("user.invited", id=user["id"]))["data"]["token"]
    token = await _reset_token(service, "keep@example.edu")

    assert (await _reset(service, invitation)).status_code == 204
    # Taking one token voids the other.
    assert _token_invalid(await _reset(service, token, "yet another password"))


async def test_a_malformed_address_is_refused_like_any_body_error(service: Service) -> None:
    response = await _forgot(service, "not an address")

    assert response.status_code == 422
    assert [(d["field"], d["code"]) for d in response.json()["error"]["details"]] == [
        ("email", "EMAIL_INVALID")
    ]
    assert await _reset_events(service) == []


async def test_requests_are_limited_per_email_with_retry_after(
    start_service: StartService,
) -> None:
    service = await start_service(login_max_failures_per_email=2)
    for _ in range(2):
        assert (await _forgot(service, ADMIN_EMAIL)).status_code == 202

    refused = await _forgot(service, ADMIN_EMAIL.upper())

    assert refused.status_code == 429
    assert error_code(refused) == "AUTH_RATE_LIMITED"
    assert 0 < int(refused.headers["retry-after"]) <= 900
    assert "password reset" in refused.json()["error"]["message"]
    assert len(await _reset_events(service)) == 2
    # Unknown addresses are counted alike, so a refusal tells nothing either.
    for _ in range(2):
        assert (await _forgot(service, "nobody@example.edu")).status_code == 202
    assert (await _forgot(service, "nobody@example.edu")).status_code == 429
    # Counted apart from sign-ins: the admin still signs in.
    assert (await service.login(ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200


async def test_requests_are_limited_per_client_address(start_service: StartService) -> None:
    service = await start_service(login_max_attempts_per_ip=3, login_max_failures_per_email=100)
    client = {"X-Forwarded-For": "203.0.113.7, 10.0.0.1"}
    for n in range(3):
        assert (await _forgot(service, f"u{n}@example.edu", **client)).status_code == 202

    refused = await _forgot(service, "u9@example.edu", **client)

    assert refused.status_code == 429
    assert error_code(refused) == "AUTH_RATE_LIMITED"
    assert 0 < int(refused.headers["retry-after"]) <= 60
    other_client = await _forgot(service, "u9@example.edu", **{"X-Forwarded-For": "198.51.100.1"})
    assert other_client.status_code == 202
    # Sign-ins from that address are counted apart.
    signed_in = await service.login(ADMIN_EMAIL, ADMIN_PASSWORD, **client)
    assert signed_in.status_code == 200


async def test_forgot_still_answers_when_redis_is_down(start_service: StartService) -> None:
    # Nothing listens on port 1: the limits fail open, as they do for sign-ins.
    service = await start_service(redis_url="redis://127.0.0.1:1/0", login_max_failures_per_email=1)

    for _ in range(2):
        assert (await _forgot(service, ADMIN_EMAIL)).status_code == 202
    assert len(await _reset_events(service)) == 2


async def test_the_reset_token_never_reaches_the_logs(service: Service, admin_token: str) -> None:
    await service.new_user(admin_token, "logs@example.edu")

    with capture_all_logs() as logs:
        token = await _reset_token(service, "logs@example.edu")
        assert (await _reset(service, token)).status_code == 204
        assert _token_invalid(await _reset(service, token, "yet another password"))
        assert (await _forgot(service, "nobody@example.edu")).status_code == 202

    logs.assert_free_of(
        {
            "reset token": token,
            "reset token hash": hashlib.sha256(token.encode()).hexdigest(),
            "new password": NEW_PASSWORD,
        }
    )


async def test_a_request_failing_after_the_answer_is_logged_and_counted(
    service: Service, admin_token: str
) -> None:
    await service.new_user(admin_token, "doomed@example.edu")
    # A rule the service does not know about makes its insert of the token fail.
    await sql(
        service.settings,
        "ALTER TABLE auth.invitations ADD CONSTRAINT test_doomed "
        "CHECK (purpose <> 'password_reset')",
    )
    failed = await service.metric("auth_password_reset_requests_total", outcome="failed")

    with capture_all_logs() as logs:
        response = await _forgot(service, "doomed@example.edu")

    assert (response.status_code, response.content) == (202, b"")
    assert await _reset_events(service) == []
    assert await service.metric("auth_password_reset_requests_total", outcome="failed") == (
        failed + 1
    )
    assert "a password reset request failed" in logs.text()
    assert "IntegrityError" in logs.text()


def test_the_event_schema_adds_token_and_expiry_like_an_invitation() -> None:
    assert set(UserPasswordResetRequestedV1.model_fields) == set(UserInvitedV1.model_fields)
    assert UserPasswordResetRequestedV1.event_version == 1


def test_sent_events_holding_tokens_are_purged_within_an_hour() -> None:
    assert SERVICE.needs.outbox_retention <= timedelta(hours=1)
