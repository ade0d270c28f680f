"""Email addresses over the API: internal domains, RFC 5321 lengths, lookalikes are one account."""

# The lookalike characters are the subject of these tests.
# ruff: noqa: RUF001

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from auth_support import PASSWORD, Service, StartService, bearer, error_code, sql


async def _create(service: Service, admin_token: str, email: str) -> httpx.Response:
    return await service.client.post(
        "/api/v1/users",
        json={"email": email, "full_name": "Someone", "role": "examiner", "password": PASSWORD},
        headers=bearer(admin_token),
    )


@pytest.mark.parametrize(
    "email",
    ["user@school.local", "user@mail.internal", "user@printer.lan", "user@mail.test"],
)
async def test_addresses_on_internal_domains_are_accepted(
    service: Service, admin_token: str, email: str
) -> None:
    response = await _create(service, admin_token, email)

    assert response.status_code == 201, response.text
    assert response.json()["email"] == email
    assert (await service.login(email, PASSWORD)).status_code == 200


@pytest.mark.parametrize(
    "email",
    [
        "user@example.invalid",
        "user@localhost",
        "x@localhost",
        "user@host.localhost",
        "a" * 65 + "@example.com",
        "é" * 33 + "@example.com",  # 66 octets before the @
    ],
)
async def test_special_use_domains_and_over_long_local_parts_are_422(
    service: Service, admin_token: str, email: str
) -> None:
    response = await _create(service, admin_token, email)

    assert response.status_code == 422, response.text
    assert error_code(response) == "VALIDATION_FAILED"
    details = response.json()["error"]["details"]
    assert [(d["field"], d["code"]) for d in details] == [("email", "EMAIL_INVALID")]


async def test_a_64_character_local_part_is_accepted(service: Service, admin_token: str) -> None:
    assert (await _create(service, admin_token, "a" * 64 + "@example.com")).status_code == 201


@pytest.mark.parametrize(
    "lookalike",
    ["ｓtu1@example.com", "𝐬tu1@example.com", "STU1@EXAMPLE.COM", "ＳＴＵ１@example.com"],
)
async def test_a_lookalike_of_a_taken_address_is_409(
    service: Service, admin_token: str, lookalike: str
) -> None:
    assert (await _create(service, admin_token, "stu1@example.com")).status_code == 201

    response = await _create(service, admin_token, lookalike)

    assert response.status_code == 409
    assert error_code(response) == "USER_EMAIL_TAKEN"


async def test_the_first_address_is_kept_as_typed_and_its_lookalikes_sign_in(
    service: Service, admin_token: str
) -> None:
    created = await _create(service, admin_token, "ｓtu1@Example.com")
    assert created.status_code == 201
    assert created.json()["email"] == "ｓtu1@example.com"  # domain normalized, local part kept

    for typed in ("stu1@example.com", "𝐬tu1@EXAMPLE.com", " STU1@example.com "):
        response = await service.login(typed, PASSWORD)
        assert response.status_code == 200, typed
        me = await service.client.get(
            "/api/v1/auth/me", headers=bearer(response.json()["access_token"])
        )
        assert me.json()["id"] == created.json()["id"]
        assert me.json()["email"] == "ｓtu1@example.com"


async def test_dotted_capital_i_and_plain_i_are_two_accounts(
    service: Service, admin_token: str
) -> None:
    first = await _create(service, admin_token, "İnfo@example.com")
    second = await _create(service, admin_token, "info@example.com")

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]


async def test_concurrent_creates_of_lookalikes_yield_one_user(
    service: Service, admin_token: str
) -> None:
    lookalikes = [
        "race@example.edu",
        "ＲＡＣＥ@example.edu",
        "𝐫ace@example.edu",
        "Race@example.edu",
    ]

    answers = await asyncio.gather(*(_create(service, admin_token, e) for e in lookalikes * 2))

    assert sorted(r.status_code for r in answers) == [201] + [409] * 7
    rows = await sql(
        service.settings,
        "SELECT email_canonical FROM auth.users WHERE email_canonical = 'race@example.edu'",
    )
    assert len(rows) == 1


async def test_failed_sign_ins_with_lookalikes_share_one_limit(
    start_service: StartService,
) -> None:
    service = await start_service(login_max_failures_per_email=3)
    admin_token = await service.access_token("root@example.edu", "root-test-password")
    assert (await _create(service, admin_token, "stu1@example.com")).status_code == 201
    for typed in ("ｓtu1@example.com", "𝐬tu1@example.com", "STU1@example.com"):
        assert (await service.login(typed, "wrong password!")).status_code == 401

    refused = await service.login("stu1@example.com", PASSWORD)

    assert refused.status_code == 429
    assert error_code(refused) == "AUTH_RATE_LIMITED"


async def test_users_are_listed_in_canonical_order_across_pages(
    service: Service, admin_token: str
) -> None:
    for email in ("b@example.com", "Ａ@example.com", "c@example.com", "𝐁b@example.com"):
        assert (await _create(service, admin_token, email)).status_code == 201
    seen: list[Any] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await service.client.get("/api/v1/users", params=params, headers=bearer(admin_token))
        ).json()
        seen += [u["email"] for u in page["items"]]
        if (cursor := page["next_cursor"]) is None:
            break

    assert seen == [
        "Ａ@example.com",
        "b@example.com",
        "𝐁b@example.com",
        "c@example.com",
        "root@example.edu",
    ]
