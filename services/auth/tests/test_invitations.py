"""Invitations: a user created without a password gets a token by event and sets a password."""

from __future__ import annotations

import hashlib
import uuid

import httpx
from auth_support import EventTap, Service, bearer, error_code, sql

NEW_PASSWORD = "my first password"


async def _reset(service: Service, token: str, password: str = NEW_PASSWORD) -> httpx.Response:
    return await service.client.post(
        "/api/v1/auth/password/reset", json={"token": token, "new_password": password}
    )


def _token_invalid(response: httpx.Response) -> bool:
    if response.status_code != 422:
        return False
    details = response.json()["error"]["details"]
    return [(d["field"], d["code"]) for d in details] == [("token", "TOKEN_INVALID")]


async def test_invited_user_gets_the_token_by_event_and_activates_with_it(
    service: Service, admin_token: str, event_tap: EventTap
) -> None:
    user = await service.create_user(
        admin_token,
        email="new.student@example.edu",
        full_name="New Student",
        role="student",
        student_number="S-42",
    )
    assert user["active"] is False

    invited = await event_tap.next("user.invited", id=user["id"])
    token = invited["data"]["token"]
    assert invited["data"]["email"] == "new.student@example.edu"
    assert invited["data"]["expires_at"].endswith("Z")
    assert (await service.login("new.student@example.edu", NEW_PASSWORD)).status_code == 401

    response = await _reset(service, token)

    assert response.status_code == 204
    assert (await service.login("new.student@example.edu", NEW_PASSWORD)).status_code == 200
    activated = await event_tap.next("user.updated", id=user["id"])
    assert activated["data"]["active"] is True
    assert activated["data"]["version"] == 2
    # Single use: the same token again is refused, and the password stays.
    again = await _reset(service, token, "another password!")
    assert _token_invalid(again)
    assert (await service.login("new.student@example.edu", NEW_PASSWORD)).status_code == 200


async def test_only_the_hash_of_the_invitation_token_is_stored(
    service: Service, admin_token: str, event_tap: EventTap
) -> None:
    user = await service.create_user(
        admin_token, email="hash@example.edu", full_name="Hash", role="examiner"
    )
    token = (await event_tap.next("user.invited", id=user["id"]))["data"]["token"]

    [row] = await sql(
        service.settings, "SELECT token_hash, expires_at - created_at AS ttl FROM auth.invitations"
    )

    assert bytes(row["token_hash"]) == hashlib.sha256(token.encode()).digest()
    assert row["ttl"].days == 7


async def test_bad_expired_and_revoked_invitations_are_refused(
    service: Service, admin_token: str, event_tap: EventTap
) -> None:
    assert _token_invalid(await _reset(service, "made-up-token"))

    expired_user = await service.create_user(
        admin_token, email="late@example.edu", full_name="Late", role="examiner"
    )
    expired = (await event_tap.next("user.invited", id=expired_user["id"]))["data"]["token"]
    await sql(
        service.settings,
        "UPDATE auth.invitations SET expires_at = now() - interval '1 s' WHERE user_id = $1",
        uuid.UUID(expired_user["id"]),
    )
    assert _token_invalid(await _reset(service, expired))

    # Deactivating an invited user withdraws the invitation.
    withdrawn_user = await service.create_user(
        admin_token, email="withdrawn@example.edu", full_name="W", role="examiner"
    )
    withdrawn = (await event_tap.next("user.invited", id=withdrawn_user["id"]))["data"]["token"]
    await service.client.patch(
        f"/api/v1/users/{withdrawn_user['id']}", json={"active": False}, headers=bearer(admin_token)
    )
    assert _token_invalid(await _reset(service, withdrawn))
    assert (await service.login("withdrawn@example.edu", NEW_PASSWORD)).status_code == 401


async def test_reset_validates_the_new_password_first(
    service: Service, admin_token: str, event_tap: EventTap
) -> None:
    user = await service.create_user(
        admin_token, email="weak@example.edu", full_name="Weak", role="examiner"
    )
    token = (await event_tap.next("user.invited", id=user["id"]))["data"]["token"]

    response = await _reset(service, token, "short")

    assert response.status_code == 422
    assert error_code(response) == "VALIDATION_FAILED"
    assert [d["field"] for d in response.json()["error"]["details"]] == ["new_password"]
    assert (await _reset(service, token)).status_code == 204  # the token was not used up
