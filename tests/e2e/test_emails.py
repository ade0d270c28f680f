"""Email rules through the gateway: internal domains, lengths, lookalikes are one account."""

from __future__ import annotations

import uuid

import pytest
from conftest import E2E, bearer

pytestmark = pytest.mark.e2e

PASSWORD = "e2e-email-rules-password"
FULLWIDTH_S = "\uff53"
BOLD_S = "\U0001d42c"


def test_internal_domains_lengths_and_lookalikes_through_the_gateway(
    e2e: E2E, admin_tokens: dict[str, str]
) -> None:
    tag = uuid.uuid4().hex[:8]
    admin = bearer(admin_tokens["access_token"])

    def create(email: str) -> int:
        body = {"email": email, "full_name": "E", "role": "examiner", "password": PASSWORD}
        with e2e.client() as client:
            response = client.post("/api/v1/users", json=body, headers=admin)
        return response.status_code

    def login(email: str) -> int:
        with e2e.client() as client:
            response = client.post(
                "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
        return response.status_code

    assert create(f"s{tag}@school.local") == 201
    assert create(f"s{tag}@mail.test") == 201
    assert create(f"s{tag}@example.invalid") == 422
    assert create(f"{tag}@localhost") == 422
    assert create(tag + "a" * (65 - len(tag)) + "@example.edu") == 422

    assert create(f"s{tag}@example.edu") == 201
    assert create(f"{FULLWIDTH_S}{tag}@example.edu") == 409
    assert create(f"{BOLD_S}{tag}@EXAMPLE.edu") == 409
    assert login(f"{FULLWIDTH_S}{tag}@example.edu") == 200
    assert login(f"S{tag}@school.local") == 200
