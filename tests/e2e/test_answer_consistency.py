"""The same answers from every service through the gateway: malformed ids, answer headers."""

from __future__ import annotations

import pytest
from conftest import E2E, bearer

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("path", ["/api/v1/exams/not-a-uuid", "/api/v1/users/not-a-uuid"])
def test_a_malformed_id_is_not_found_on_every_service(
    e2e: E2E, admin_tokens: dict[str, str], path: str
) -> None:
    with e2e.client() as client:
        response = client.get(path, headers=bearer(admin_tokens["access_token"]))
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_authenticated_answers_are_nosniff_not_stored_and_name_no_server(
    e2e: E2E, admin_tokens: dict[str, str]
) -> None:
    with e2e.client() as client:
        me = client.get("/api/v1/auth/me", headers=bearer(admin_tokens["access_token"]))
        exams = client.get("/api/v1/exams", headers=bearer(admin_tokens["access_token"]))
        jwks = client.get("/.well-known/jwks.json")
    for response in (me, exams):
        assert response.status_code == 200, response.text
        assert response.headers.get_list("x-content-type-options") == ["nosniff"]
        assert response.headers.get_list("cache-control") == ["no-store"]
        assert "server" not in response.headers
    # An anonymous answer is nosniff too, and the JWKS keeps its own caching.
    assert jwks.headers.get_list("x-content-type-options") == ["nosniff"]
    assert jwks.headers["cache-control"].startswith("public, max-age=")
    assert "server" not in jwks.headers
