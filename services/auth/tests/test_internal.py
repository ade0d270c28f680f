"""/internal lookups other services use when their read model has not caught up yet."""

from __future__ import annotations

import uuid

from auth_support import Service, error_code


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

    by_id = await service.client.get(f"/internal/users/{exa['id']}")
    by_number = await service.client.get("/internal/students/S-2")
    lookup = await service.client.post(
        "/internal/students/lookup", json={"student_numbers": ["S-2", "S-404", "S-1", "S-1"]}
    )

    assert by_id.json() == {**exa, "version": 1}
    assert by_number.json() == {**bob, "version": 1}
    assert lookup.status_code == 200
    assert lookup.json() == {"items": [{**ann, "version": 1}, {**bob, "version": 1}]}


async def test_internal_lookups_answer_404_for_unknown_ids_and_numbers(service: Service) -> None:
    for path in (f"/internal/users/{uuid.uuid4()}", "/internal/users/nope", "/internal/students/X"):
        response = await service.client.get(path)
        assert response.status_code == 404, path
        assert error_code(response) == "NOT_FOUND"


async def test_student_lookup_takes_at_most_5000_numbers(service: Service) -> None:
    ok = await service.client.post(
        "/internal/students/lookup", json={"student_numbers": [f"S-{n}" for n in range(5000)]}
    )
    too_many = await service.client.post(
        "/internal/students/lookup", json={"student_numbers": [f"S-{n}" for n in range(5001)]}
    )

    assert ok.status_code == 200
    assert ok.json() == {"items": []}
    assert too_many.status_code == 422
    assert error_code(too_many) == "VALIDATION_FAILED"


async def test_internal_paths_are_left_out_of_the_openapi_document(service: Service) -> None:
    paths = (await service.client.get("/openapi.json")).json()["paths"]

    assert not [p for p in paths if p.startswith("/internal")]
    assert "/api/v1/auth/login" in paths
