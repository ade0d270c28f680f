"""GET /openapi.json merges the upstreams' public paths; unavailable ones are listed."""

from __future__ import annotations

import httpx
from gateway_fakes import GatewayProcess


def test_merged_openapi_keeps_public_paths_and_merges_components(
    faulty_gateway: GatewayProcess,
) -> None:
    response = httpx.get(faulty_gateway.url + "/openapi.json")
    assert response.status_code == 200
    doc = response.json()
    paths = set(doc["paths"])
    assert {
        "/api/v1/auth/login",
        "/api/v1/users/{user_id}",
        "/api/v1/exams",
        "/api/v1/me/results",
        "/api/v1/exams/{exam_id}/imports",
        "/api/v1/jobs/{job_id}",
    } <= paths
    assert not any(p.startswith("/internal") for p in paths)
    assert not {"/healthz", "/metrics", "/readyz"} & paths
    # The imports path comes from bulk (which owns it), not from results' stray copy.
    imports = doc["paths"]["/api/v1/exams/{exam_id}/imports"]["post"]["responses"]
    assert "202" in imports
    schemas = doc["components"]["schemas"]
    assert schemas["User"]["type"] == "object"
    assert schemas["Error"]["type"] == "object"
    assert schemas["BulkError"] == {"type": "string", "description": "different"}
    ref = imports["202"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/BulkError"
    assert doc["x-unavailable"] == ["notifier"]


def test_openapi_lists_no_unavailable_upstream_when_all_answer(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["x-unavailable"] == []
    assert "/api/v1/notifications" in doc["paths"]
