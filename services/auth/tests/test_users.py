"""/api/v1/users: administration of users, admins only."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from auth_support import PASSWORD, Service, bearer, error_code, sql


def _fields(response: Any) -> list[tuple[str, str]]:
    return [(d["field"], d["code"]) for d in response.json()["error"]["details"]]


async def test_create_user_returns_the_user(service: Service, admin_token: str) -> None:
    response = await service.client.post(
        "/api/v1/users",
        json={
            "email": "Stu.Dent@Example.EDU",
            "full_name": "  Stu Dent ",
            "role": "student",
            "student_number": " S-1001 ",
            "password": PASSWORD,
        },
        headers=bearer(admin_token),
    )

    assert response.status_code == 201
    user = response.json()
    assert set(user) == {
        "id",
        "email",
        "full_name",
        "role",
        "student_number",
        "active",
        "created_at",
    }
    uuid.UUID(user["id"])
    assert user["email"] == "Stu.Dent@example.edu"  # domain lower-cased, local part kept
    assert user["full_name"] == "Stu Dent"
    assert user["student_number"] == "S-1001"
    assert user["active"] is True
    assert user["created_at"].endswith("Z")
    assert (await service.login("stu.dent@example.edu", PASSWORD)).status_code == 200


async def test_emails_are_unique_case_insensitively(service: Service, admin_token: str) -> None:
    await service.new_user(admin_token, "dup@example.edu")

    response = await service.client.post(
        "/api/v1/users",
        json={"email": "DUP@example.edu", "full_name": "Dup", "role": "admin"},
        headers=bearer(admin_token),
    )

    assert response.status_code == 409
    assert error_code(response) == "USER_EMAIL_TAKEN"


async def test_concurrent_creates_of_one_email_yield_one_user(
    service: Service, admin_token: str
) -> None:
    def create(email: str) -> Any:
        return service.client.post(
            "/api/v1/users",
            json={"email": email, "full_name": "Race", "role": "examiner", "password": PASSWORD},
            headers=bearer(admin_token),
        )

    answers = await asyncio.gather(
        *(create(e) for e in ["race@example.edu", "RACE@example.edu"] * 3)
    )

    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409, 409, 409]
    rows = await sql(
        service.settings, "SELECT 1 FROM auth.users WHERE lower(email) = 'race@example.edu'"
    )
    assert len(rows) == 1


async def test_student_numbers_are_unique(service: Service, admin_token: str) -> None:
    await service.new_user(admin_token, "s1@example.edu", role="student", student_number="S-7")

    response = await service.client.post(
        "/api/v1/users",
        json={
            "email": "s2@example.edu",
            "full_name": "S2",
            "role": "student",
            "student_number": "S-7",
        },
        headers=bearer(admin_token),
    )

    assert response.status_code == 409
    assert error_code(response) == "STUDENT_NUMBER_TAKEN"


NEW_USER_PROBLEMS: list[tuple[dict[str, Any], list[tuple[str, str]]]] = [
    ({"role": "student"}, [("student_number", "REQUIRED")]),
    ({"role": "examiner", "student_number": "S-1"}, [("student_number", "NOT_ALLOWED")]),
    ({"role": "admin", "password": "short"}, [("password", "PASSWORD_TOO_SHORT")]),
    ({"role": "admin", "email": "not-an-email"}, [("email", "EMAIL_INVALID")]),
    (
        {"role": "student", "email": "bad@", "full_name": " ", "password": "short"},
        [
            ("email", "EMAIL_INVALID"),
            ("full_name", "REQUIRED"),
            ("student_number", "REQUIRED"),
            ("password", "PASSWORD_TOO_SHORT"),
        ],
    ),
    ({"role": "teacher"}, [("role", "INVALID_ROLE")]),
    ({"role": "admin", "nickname": "x"}, [("nickname", "EXTRA_FORBIDDEN")]),
    ({"full_name": None, "role": "admin"}, [("full_name", "STRING_TYPE")]),
]


async def test_invalid_new_users_get_422_with_details_per_field(
    service: Service, admin_token: str
) -> None:
    for body, expected in NEW_USER_PROBLEMS:
        payload = {"email": "new@example.edu", "full_name": "New", **body}

        response = await service.client.post(
            "/api/v1/users", json=payload, headers=bearer(admin_token)
        )

        assert response.status_code == 422, body
        assert error_code(response) == "VALIDATION_FAILED"
        assert _fields(response) == expected, body
    assert len(await sql(service.settings, "SELECT 1 FROM auth.users")) == 1  # the admin


async def test_non_admins_are_forbidden_and_anonymous_callers_unauthorized(
    service: Service, admin_token: str
) -> None:
    user = await service.new_user(admin_token, "exa@example.edu")
    examiner = await service.access_token("exa@example.edu", PASSWORD)
    calls = [
        ("POST", "/api/v1/users", {"email": "x@example.edu", "full_name": "X", "role": "admin"}),
        ("GET", "/api/v1/users", None),
        ("GET", f"/api/v1/users/{user['id']}", None),
        ("PATCH", f"/api/v1/users/{user['id']}", {"role": "admin"}),
    ]

    for method, path, body in calls:
        forbidden = await service.client.request(method, path, json=body, headers=bearer(examiner))
        anonymous = await service.client.request(method, path, json=body)
        assert forbidden.status_code == 403, (method, path)
        assert error_code(forbidden) == "FORBIDDEN"
        assert anonymous.status_code == 401
        assert error_code(anonymous) == "AUTH_TOKEN_MISSING"


async def test_a_demoted_admin_loses_admin_rights_at_once(
    service: Service, admin_token: str
) -> None:
    other = await service.new_user(admin_token, "boss@example.edu", role="admin")
    boss = await service.access_token("boss@example.edu", PASSWORD)

    await service.client.patch(
        f"/api/v1/users/{other['id']}", json={"role": "examiner"}, headers=bearer(admin_token)
    )

    # The access token still says admin; auth checks its own table.
    response = await service.client.get("/api/v1/users", headers=bearer(boss))
    assert response.status_code == 403


async def test_get_user_and_its_404s(service: Service, admin_token: str) -> None:
    user = await service.new_user(admin_token, "get@example.edu")

    found = await service.client.get(f"/api/v1/users/{user['id']}", headers=bearer(admin_token))
    unknown = await service.client.get(f"/api/v1/users/{uuid.uuid4()}", headers=bearer(admin_token))
    malformed = await service.client.get("/api/v1/users/not-a-uuid", headers=bearer(admin_token))

    assert found.status_code == 200
    assert found.json() == user
    for response in (unknown, malformed):
        assert response.status_code == 404
        assert error_code(response) == "NOT_FOUND"
    patch_unknown = await service.client.patch(
        f"/api/v1/users/{uuid.uuid4()}", json={"active": False}, headers=bearer(admin_token)
    )
    assert patch_unknown.status_code == 404


async def test_patch_changes_name_role_and_active(service: Service, admin_token: str) -> None:
    user = await service.new_user(admin_token, "pat@example.edu")

    response = await service.client.patch(
        f"/api/v1/users/{user['id']}",
        json={"full_name": "Pat Changed", "role": "admin", "active": False},
        headers=bearer(admin_token),
    )

    assert response.status_code == 200
    changed = response.json()
    assert (changed["full_name"], changed["role"], changed["active"]) == (
        "Pat Changed",
        "admin",
        False,
    )
    assert {k: v for k, v in changed.items() if k not in ("full_name", "role", "active")} == {
        k: v for k, v in user.items() if k not in ("full_name", "role", "active")
    }


async def test_deactivation_revokes_the_users_sessions(service: Service, admin_token: str) -> None:
    user = await service.new_user(admin_token, "gone@example.edu")
    sessions = [await service.tokens("gone@example.edu", PASSWORD) for _ in range(2)]

    await service.client.patch(
        f"/api/v1/users/{user['id']}", json={"active": False}, headers=bearer(admin_token)
    )

    live = await sql(
        service.settings,
        "SELECT id FROM auth.refresh_families WHERE user_id = $1 AND revoked_at IS NULL",
        uuid.UUID(user["id"]),
    )
    assert live == []
    for tokens in sessions:
        assert (await service.refresh(tokens["refresh_token"])).status_code == 401
    # Reactivated, the user signs in again with the same password.
    await service.client.patch(
        f"/api/v1/users/{user['id']}", json={"active": True}, headers=bearer(admin_token)
    )
    assert (await service.login("gone@example.edu", PASSWORD)).status_code == 200


PATCH_PROBLEMS: list[tuple[dict[str, Any], str, str]] = [
    ({"role": "student"}, "role", "ROLE_CHANGE_NOT_ALLOWED"),
    ({"full_name": ""}, "full_name", "REQUIRED"),
    ({"full_name": None}, "full_name", "NULL_NOT_ALLOWED"),
    ({"active": None}, "active", "NULL_NOT_ALLOWED"),
    ({"email": "new@example.edu"}, "email", "EXTRA_FORBIDDEN"),
    # Strict: not even "true" or 1 is read as a boolean (test_user_patch_strict.py).
    ({"active": "maybe"}, "active", "BOOL_TYPE"),
]


async def test_invalid_patches_get_422_and_change_nothing(
    service: Service, admin_token: str
) -> None:
    user = await service.new_user(admin_token, "inv@example.edu")

    for body, field, code in PATCH_PROBLEMS:
        response = await service.client.patch(
            f"/api/v1/users/{user['id']}", json=body, headers=bearer(admin_token)
        )

        assert response.status_code == 422, body
        assert _fields(response) == [(field, code)], body
    after = await service.client.get(f"/api/v1/users/{user['id']}", headers=bearer(admin_token))
    assert after.json() == user


async def test_admins_cannot_deactivate_or_demote_themselves(
    service: Service, admin_token: str
) -> None:
    me = (await service.client.get("/api/v1/auth/me", headers=bearer(admin_token))).json()

    for body in ({"active": False}, {"role": "examiner"}):
        response = await service.client.patch(
            f"/api/v1/users/{me['id']}", json=body, headers=bearer(admin_token)
        )
        assert response.status_code == 409
        assert error_code(response) == "CONFLICT"


async def test_list_pages_through_every_user_once(service: Service, admin_token: str) -> None:
    for n in range(7):
        await service.new_user(admin_token, f"user{n}@example.edu")

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = await service.client.get(
            "/api/v1/users", params=params, headers=bearer(admin_token)
        )
        assert response.status_code == 200
        page = response.json()
        assert set(page) == {"items", "next_cursor"}
        seen += [u["email"] for u in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3  # 8 users (the admin too) in pages of 3
    assert seen == sorted(seen)
    assert len(seen) == len(set(seen)) == 8


async def test_list_defaults_to_50_and_filters_by_role_and_text(
    service: Service, admin_token: str
) -> None:
    await service.new_user(admin_token, "ada@example.edu", full_name="Ada Lovelace")
    await service.new_user(admin_token, "alan@example.edu", role="student", full_name="Alan Turing")
    await service.new_user(
        admin_token, "grace@navy.example", role="student", full_name="Grace 100%"
    )

    async def emails(**params: str) -> list[str]:
        response = await service.client.get(
            "/api/v1/users", params=params, headers=bearer(admin_token)
        )
        assert response.status_code == 200
        return [u["email"] for u in response.json()["items"]]

    assert len(await emails()) == 4
    assert await emails(role="student") == ["alan@example.edu", "grace@navy.example"]
    assert await emails(q="LOVELACE") == ["ada@example.edu"]  # full name, any case
    assert await emails(q="NAVY") == ["grace@navy.example"]  # email, any case
    assert await emails(q="a", role="student") == ["alan@example.edu", "grace@navy.example"]
    assert await emails(q="100%") == ["grace@navy.example"]  # LIKE wildcards are literal
    assert await emails(q="_") == []


BAD_LIST_PARAMETERS: list[dict[str, str]] = [
    {"cursor": "garbage!"},
    {"cursor": "eyJ2Ijo5fQ"},  # {"v":9}: a cursor of another version
    {"limit": "0"},
    {"limit": "501"},
    {"limit": "x"},
    {"role": "teacher"},
]


async def test_bad_list_parameters_are_bad_requests(service: Service, admin_token: str) -> None:
    for params in BAD_LIST_PARAMETERS:
        response = await service.client.get(
            "/api/v1/users", params=params, headers=bearer(admin_token)
        )

        assert response.status_code == 400, params
        assert error_code(response) == "BAD_REQUEST"


async def test_a_cursor_only_continues_the_list_and_filters_it_came_from(
    service: Service, admin_token: str
) -> None:
    for n in range(3):
        await service.new_user(admin_token, f"pager{n}@example.edu")
    first = await service.client.get(
        "/api/v1/users", params={"limit": 1, "q": "pager"}, headers=bearer(admin_token)
    )
    cursor = first.json()["next_cursor"]
    assert cursor is not None
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]

    for params in (
        {"q": "pager", "cursor": cursor},
        {"q": "pager", "role": "admin", "cursor": cursor},
        {"q": "other", "cursor": cursor},
        {"cursor": cursor},
        {"q": "pager", "cursor": flipped},
        {"q": "pager", "cursor": "x" * 600},
    ):
        response = await service.client.get(
            "/api/v1/users", params=params, headers=bearer(admin_token)
        )
        expected = 200 if params == {"q": "pager", "cursor": cursor} else 400
        assert response.status_code == expected, params
        if expected == 400:
            assert error_code(response) == "BAD_REQUEST"
            assert response.json()["error"]["request_id"]


async def test_limit_500_is_allowed(service: Service, admin_token: str) -> None:
    response = await service.client.get(
        "/api/v1/users", params={"limit": 500}, headers=bearer(admin_token)
    )

    assert response.status_code == 200


async def test_every_problem_of_a_new_user_is_reported_at_once(
    service: Service, admin_token: str
) -> None:
    response = await service.client.post(
        "/api/v1/users",
        json={"email": "not-an-email", "full_name": " ", "role": "wizard", "password": "short"},
        headers=bearer(admin_token),
    )

    assert response.status_code == 422
    assert error_code(response) == "VALIDATION_FAILED"
    fields = dict(_fields(response))
    assert fields["role"] == "INVALID_ROLE"
    assert {"email", "full_name", "password"} <= set(fields)
