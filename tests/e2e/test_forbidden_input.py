"""NUL in a login and a login that is not JSON, through the gateway to the real auth service.

Login is open to anyone, so a NUL that reached Postgres was a 500 any stranger
could provoke; the kit refuses it in the envelope before the service's code runs.
"""

from __future__ import annotations

import pytest
from conftest import E2E

pytestmark = pytest.mark.e2e


def test_nul_in_the_login_email_is_422_through_the_gateway(e2e: E2E) -> None:
    with e2e.client() as client:
        response = client.post(
            "/api/v1/auth/login", json={"email": "nul\x00@example.edu", "password": "x" * 12}
        )

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_FAILED"
    assert error["details"] == [
        {"field": "email", "code": "FORBIDDEN_CHARACTER", "message": error["details"][0]["message"]}
    ]
    assert error["request_id"] == response.headers["x-request-id"]


def test_text_plain_login_is_415_through_the_gateway(e2e: E2E) -> None:
    with e2e.client() as client:
        response = client.post(
            "/api/v1/auth/login",
            content='{"email": "a@example.edu", "password": "xxxxxxxxxxxx"}',
            headers={"content-type": "text/plain"},
        )

    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
