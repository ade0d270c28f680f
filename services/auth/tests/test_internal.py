"""/internal: what other services ask auth, only with a service token (docs/adr/0011)."""

from __future__ import annotations

import base64
import time
import uuid

import jwt
import pytest
from auth_support import PASSWORD, Service, bearer, error_code

INTERNAL_GETS = ("/internal/users/{id}", "/internal/students/S-1", "/internal/revocations")


async def test_internal_lookups_find_users_and_students_at_once(
    service: Service, admin_token: str
) -> None:
    ann = await service.new_user(
        admin_token, "ann@example.edu", role="student", student_number="S-1"
    )
    bob = await service.new_user(
        admin_token, "bob@example.edu", role="student", student_number="S-2"
    )
    exa = await service.new_user(admin_token, "exa@example.edu")
    headers = await service.service_headers()

    by_id = await service.client.get(f"/internal/users/{exa['id']}", headers=headers)
    by_number = await service.client.get("/internal/students/S-2", headers=headers)
    lookup = await service.client.post(
        "/internal/students/lookup",
        json={"student_numbers": ["S-2", "S-404", "S-1", "S-1"]},
        headers=headers,
    )

    assert by_id.json() == {**exa, "version": 1}
    assert by_number.json() == {**bob, "version": 1}
    assert lookup.status_code == 200
    assert lookup.json() == {"items": [{**ann, "version": 1}, {**bob, "version": 1}]}


async def test_internal_lookups_answer_404_for_unknown_ids_and_numbers(service: Service) -> None:
    headers = await service.service_headers()
    for path in (f"/internal/users/{uuid.uuid4()}", "/internal/users/nope", "/internal/students/X"):
        response = await service.client.get(path, headers=headers)
        assert response.status_code == 404, path
        assert error_code(response) == "NOT_FOUND"


async def test_student_lookup_takes_at_most_5000_numbers(service: Service) -> None:
    headers = await service.service_headers()
    ok = await service.client.post(
        "/internal/students/lookup",
        json={"student_numbers": [f"S-{n}" for n in range(5000)]},
        headers=headers,
    )
    too_many = await service.client.post(
        "/internal/students/lookup",
        json={"student_numbers": [f"S-{n}" for n in range(5001)]},
        headers=headers,
    )

    assert ok.status_code == 200
    assert ok.json() == {"items": []}
    assert too_many.status_code == 422
    assert error_code(too_many) == "VALIDATION_FAILED"


async def test_internal_paths_are_left_out_of_the_openapi_document(service: Service) -> None:
    paths = (await service.client.get("/openapi.json")).json()["paths"]

    assert not [p for p in paths if p.startswith("/internal")]
    assert "/api/v1/auth/login" in paths


# -- who gets in -------------------------------------------------------------------------


async def test_internal_endpoints_refuse_calls_without_a_service_token(
    service: Service, admin_token: str
) -> None:
    """Before: reaching the port was enough to read any user's record."""
    user = await service.new_user(admin_token, "ann@example.edu")
    admin_user_token = bearer(admin_token)
    for template in INTERNAL_GETS:
        path = template.format(id=user["id"])
        for headers in ({}, admin_user_token, {"Authorization": "Bearer not-a-token"}):
            response = await service.client.get(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
    lookup = await service.client.post(
        "/internal/students/lookup", json={"student_numbers": ["S-1"]}, headers=admin_user_token
    )
    assert lookup.status_code == 401


async def test_a_service_token_is_bound_to_its_audience(service: Service) -> None:
    """bulk may call results: its token for results opens nothing at auth."""
    for_results = await service.service_token("bulk", audience="internal:results")
    assert for_results.status_code == 200, for_results.text

    response = await service.client.get(
        "/internal/revocations", headers=bearer(for_results.json()["access_token"])
    )

    assert response.status_code == 401


async def test_a_service_token_is_never_a_users_token(service: Service) -> None:
    headers = await service.service_headers()

    me = await service.client.get("/api/v1/auth/me", headers=headers)
    users = await service.client.get("/api/v1/users", headers=headers)

    assert me.status_code == 401
    assert users.status_code == 401


async def test_service_token_claims(service: Service) -> None:
    response = await service.service_token("notifier")

    body = response.json()
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == service.settings.service_token_ttl_seconds
    assert claims["aud"] == "internal:auth"
    assert claims["client_id"] == "notifier"
    assert claims["token_use"] == "service"
    assert claims["sub"] == "service:notifier"
    assert claims["exp"] - claims["iat"] == service.settings.service_token_ttl_seconds
    assert abs(claims["iat"] - time.time()) < 5


@pytest.mark.parametrize(
    ("client_id", "secret", "audience", "status", "code"),
    [
        (
            "results",
            "a-wrong-secret-of-some-length",
            "internal:auth",
            401,
            "AUTH_INVALID_CREDENTIALS",
        ),
        ("nobody", None, "internal:auth", 401, "AUTH_INVALID_CREDENTIALS"),
        # results was not granted results (nor bulk's audiences): asking is not enough.
        ("results", None, "internal:results", 403, "FORBIDDEN"),
        ("results", None, "exam-results", 403, "FORBIDDEN"),
    ],
)
async def test_the_token_endpoint_refuses_wrong_clients_and_audiences(
    service: Service, client_id: str, secret: str | None, audience: str, status: int, code: str
) -> None:
    if secret is None:
        response = await service.service_token(client_id, audience=audience)
    else:
        response = await service.service_token(client_id, audience=audience, secret=secret)

    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert "access_token" not in response.text


async def test_the_token_endpoint_wants_a_client_credentials_form(service: Service) -> None:
    basic = (
        "Basic "
        + base64.b64encode(b"results:dev-service-client-secret-not-for-production").decode()
    )
    url = "/internal/oauth/token"
    form = {"content-type": "application/x-www-form-urlencoded", "authorization": basic}

    as_json = await service.client.post(
        url, json={"grant_type": "client_credentials"}, headers={"authorization": basic}
    )
    wrong_grant = await service.client.post(
        url, content=b"grant_type=password&audience=internal:auth", headers=form
    )
    no_audience = await service.client.post(
        url, content=b"grant_type=client_credentials", headers=form
    )
    two_audiences = await service.client.post(
        url,
        content=b"grant_type=client_credentials&audience=internal:auth&audience=internal:results",
        headers=form,
    )
    no_basic = await service.client.post(
        url,
        content=b"grant_type=client_credentials&audience=internal:auth",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    garbled_basic = await service.client.post(
        url,
        content=b"grant_type=client_credentials&audience=internal:auth",
        headers={**form, "authorization": "Basic %%%"},
    )

    assert as_json.status_code == 415
    assert (wrong_grant.status_code, error_code(wrong_grant)) == (400, "BAD_REQUEST")
    assert no_audience.status_code == 400
    assert two_audiences.status_code == 400
    assert (no_basic.status_code, error_code(no_basic)) == (401, "AUTH_INVALID_CREDENTIALS")
    assert garbled_basic.status_code == 401


async def test_a_rotated_secret_works_next_to_the_old_one(start_service: object) -> None:
    from auth_service.domain.service_clients import secret_digest
    from auth_service.settings import ServiceClientGrant

    old, new = "old-secret-of-results-0123456789", "new-secret-of-results-0123456789"
    grant = ServiceClientGrant(
        secret_sha256=[secret_digest(old).hex(), secret_digest(new).hex()], audiences=["auth"]
    )
    service: Service = await start_service(service_clients={"results": grant})  # type: ignore[operator]

    for secret in (old, new):
        assert (await service.service_token("results", secret=secret)).status_code == 200
    assert (await service.service_token("results", secret=old + "x")).status_code == 401
    # A client missing from SERVICE_CLIENTS gets nothing, even with the dev secret.
    assert (await service.service_token("gateway")).status_code == 401


# -- the revocation feed --------------------------------------------------------------------


async def _feed(service: Service, after: int = 0) -> dict[str, object]:
    response = await service.client.get(
        "/internal/revocations", params={"after": after}, headers=await service.service_headers()
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


async def test_the_feed_lists_logouts_role_changes_and_deactivations(
    service: Service, admin_token: str
) -> None:
    start = await _feed(service)
    ann = await service.new_user(admin_token, "ann@example.edu")
    bob = await service.new_user(admin_token, "bob@example.edu")
    ann_tokens = await service.tokens("ann@example.edu", PASSWORD)
    bob_tokens = await service.tokens("bob@example.edu", PASSWORD)
    ann_sid = jwt.decode(ann_tokens["access_token"], options={"verify_signature": False})["sid"]

    await service.client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": ann_tokens["refresh_token"]},
        headers=bearer(ann_tokens["access_token"]),
    )
    await service.client.patch(
        f"/api/v1/users/{bob['id']}", json={"role": "admin"}, headers=bearer(admin_token)
    )
    feed = await _feed(service, int(start["next_after"]))  # type: ignore[call-overload]

    records = feed["revocations"]
    assert isinstance(records, list)
    by_user = {r["user_id"]: r for r in records}
    assert by_user[ann["id"]]["session_id"] == ann_sid
    assert by_user[ann["id"]]["min_access_epoch"] is None
    assert by_user[bob["id"]]["min_access_epoch"] == 1
    assert by_user[bob["id"]]["session_id"] is None
    assert int(feed["next_after"]) >= int(start["next_after"])  # type: ignore[call-overload]
    del bob_tokens
    # Later polls from the returned cursor do not lose anything and may repeat.
    again = await _feed(service, int(feed["next_after"]))  # type: ignore[call-overload]
    assert {r["seq"] for r in again["revocations"]} <= {r["seq"] for r in records}  # type: ignore[union-attr]


async def test_a_new_token_after_a_role_change_carries_the_new_epoch(
    service: Service, admin_token: str
) -> None:
    bob = await service.new_user(admin_token, "bob@example.edu")
    before = await service.access_token("bob@example.edu", PASSWORD)

    await service.client.patch(
        f"/api/v1/users/{bob['id']}", json={"role": "admin"}, headers=bearer(admin_token)
    )
    after = await service.access_token("bob@example.edu", PASSWORD)

    claims = [jwt.decode(t, options={"verify_signature": False}) for t in (before, after)]
    assert [c["access_epoch"] for c in claims] == [0, 1]
    assert [c["role"] for c in claims] == ["examiner", "admin"]
    me = await service.client.get("/api/v1/auth/me", headers=bearer(after))
    assert me.status_code == 200
    assert me.json()["role"] == "admin"
