"""Text Postgres cannot hold, and bodies that are not JSON, are refused in the envelope.

NUL (and a lone surrogate, which has no UTF-8 form) used to reach a query and
answer 500, on login before any authentication. The kit refuses them now: 422
with a ``FORBIDDEN_CHARACTER`` detail in a body, 400 in the query; a JSON call
given text or a form answers 415.
"""

from __future__ import annotations

import httpx
import pytest
from auth_support import ADMIN_EMAIL, Service, bearer, error_code


def _fields(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 422, response.text
    assert error_code(response) == "VALIDATION_FAILED"
    return [(d["field"], d["code"]) for d in response.json()["error"]["details"]]


async def test_nul_in_the_login_email_is_422_not_500(service: Service) -> None:
    response = await service.login("root\x00@example.edu", "whatever password")

    assert _fields(response) == [("email", "FORBIDDEN_CHARACTER")]
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


async def test_lone_surrogate_in_the_login_password_is_422(service: Service) -> None:
    response = await service.client.post(
        "/api/v1/auth/login",
        content=f'{{"email": "{ADMIN_EMAIL}", "password": "abc\\ud800defghijk"}}',
        headers={"content-type": "application/json"},
    )

    assert _fields(response) == [("password", "FORBIDDEN_CHARACTER")]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (f'{{"email": "{ADMIN_EMAIL}", "password": "x"}}', "text/plain"),
        (f"email={ADMIN_EMAIL}&password=x", "application/x-www-form-urlencoded"),
    ],
)
async def test_login_refuses_a_body_that_is_not_json_with_415(
    service: Service, content: str, content_type: str
) -> None:
    response = await service.client.post(
        "/api/v1/auth/login", content=content, headers={"content-type": content_type}
    )

    assert response.status_code == 415, response.text
    assert error_code(response) == "UNSUPPORTED_MEDIA_TYPE"


async def test_login_takes_json_with_a_charset(service: Service) -> None:
    response = await service.client.post(
        "/api/v1/auth/login",
        content=f'{{"email": "{ADMIN_EMAIL}", "password": "wrong password!"}}',
        headers={"content-type": "application/json; charset=utf-8"},
    )

    assert response.status_code == 401
    assert error_code(response) == "AUTH_INVALID_CREDENTIALS"


async def test_nul_in_a_new_user_field_is_422(service: Service, admin_token: str) -> None:
    response = await service.client.post(
        "/api/v1/users",
        json={"email": "nul@example.edu", "full_name": "Ada\x00", "role": "examiner"},
        headers=bearer(admin_token),
    )

    assert _fields(response) == [("full_name", "FORBIDDEN_CHARACTER")]


async def test_nul_in_a_user_patch_is_422_and_changes_nothing(
    service: Service, admin_token: str
) -> None:
    user = await service.new_user(admin_token, "grace@example.edu")

    response = await service.client.patch(
        f"/api/v1/users/{user['id']}", json={"full_name": "\x00"}, headers=bearer(admin_token)
    )

    assert _fields(response) == [("full_name", "FORBIDDEN_CHARACTER")]
    again = await service.client.get(f"/api/v1/users/{user['id']}", headers=bearer(admin_token))
    assert again.json()["full_name"] == user["full_name"]


@pytest.mark.parametrize("params", [{"q": "ada\x00"}, {"cursor": "abc\x00"}])
async def test_nul_in_a_user_list_query_is_400(
    service: Service, admin_token: str, params: dict[str, str]
) -> None:
    response = await service.client.get("/api/v1/users", params=params, headers=bearer(admin_token))

    assert response.status_code == 400, response.text
    assert error_code(response) == "BAD_REQUEST"


async def test_nul_in_a_user_id_path_is_400(service: Service, admin_token: str) -> None:
    response = await service.client.get("/api/v1/users/%00", headers=bearer(admin_token))

    assert response.status_code == 400, response.text
    assert error_code(response) == "BAD_REQUEST"
