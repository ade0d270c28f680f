"""PATCH /api/v1/users/{id}: ``active`` is a JSON boolean and nothing else.

Found by schemathesis over the merged OpenAPI document: ``{"active": 0}`` was
read as false and deactivated the account, although the document (and API.md)
say boolean; a flag that ends someone's access is not guessed at.
"""

from __future__ import annotations

import pytest
from auth_support import Service, bearer


@pytest.mark.parametrize("active", [0, 1, "false", "true", "no", None])
async def test_active_must_be_a_json_boolean(
    service: Service, admin_token: str, active: object
) -> None:
    user = await service.new_user(admin_token, "strict-flag@example.edu")
    response = await service.client.patch(
        f"/api/v1/users/{user['id']}", json={"active": active}, headers=bearer(admin_token)
    )
    assert response.status_code == 422, response.text
    (detail,) = response.json()["error"]["details"]
    assert detail["field"] == "active"
    assert detail["code"] == ("NULL_NOT_ALLOWED" if active is None else "BOOL_TYPE")
    again = await service.client.get(f"/api/v1/users/{user['id']}", headers=bearer(admin_token))
    assert again.json()["active"] is True
