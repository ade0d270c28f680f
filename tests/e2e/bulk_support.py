"""Helpers of the bulk end-to-end tests: people, exams, uploads and waiting for jobs."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from conftest import E2E, bearer

CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FINISHED = {"succeeded", "completed_with_errors", "failed", "cancelled"}
PASSWORD = "bulk-e2e-password-1"


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def create_user(client: httpx.Client, role: str, number: str | None = None) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:10]
    body: dict[str, Any] = {
        "email": f"bulk-{role}-{tag}@example.edu",
        "full_name": f"Bulk {role.title()} {tag}",
        "role": role,
        "password": PASSWORD,
    }
    if role == "student":
        body["student_number"] = number or f"S-{tag}"
    return dict(ok(client.post("/api/v1/users", json=body), 201))


def login(e2e: E2E, email: str, password: str = PASSWORD) -> str:
    with e2e.client() as client:
        data = ok(client.post("/api/v1/auth/login", json={"email": email, "password": password}))
    return str(data["access_token"])


def create_exam(
    client: httpx.Client, subjects: list[tuple[str, int]], name: str = "Bulk exam"
) -> dict[str, Any]:
    body = {
        "code": f"BULK-{uuid.uuid4().hex[:8]}",
        "name": name,
        "subjects": [
            {"code": code, "name": code.title(), "max_mark": max_mark, "pass_mark": max_mark // 2}
            for code, max_mark in subjects
        ],
        "grading_scale": [
            {"grade": "A", "min_percent": 70, "points": 4},
            {"grade": "F", "min_percent": 0, "points": 0},
        ],
        "pass_percent": 40,
    }
    return dict(ok(client.post("/api/v1/exams", json=body), 201))


def upload(
    client: httpx.Client,
    path: str,
    data: bytes,
    *,
    content_type: str = CSV,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    return client.post(
        path,
        content=data,
        params=params or {},
        headers={"Content-Type": content_type, **(headers or {})},
    )


def wait_for_job(
    client: httpx.Client, job_id: str, *, timeout: float = 120.0, until: set[str] = FINISHED
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = ok(client.get(f"/api/v1/jobs/{job_id}"))
        if job["status"] in until:
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}: {job}"
        time.sleep(0.1)


def errors_of(client: httpx.Client, job_id: str) -> list[list[str]]:
    import csv
    import io

    response = client.get(f"/api/v1/jobs/{job_id}/errors")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["row", "column", "code", "message", "value"]
    return rows[1:]


def marks_of(client: httpx.Client, exam_id: str) -> dict[tuple[str, str], tuple[str, Any]]:
    found: dict[tuple[str, str], tuple[str, Any]] = {}
    cursor = None
    while True:
        params = {"limit": "500", **({"cursor": cursor} if cursor else {})}
        page = ok(client.get(f"/api/v1/exams/{exam_id}/marks", params=params))
        for item in page["items"]:
            found[(item["student_number"], item["subject_code"])] = (item["status"], item["mark"])
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def wait_fresh(client: httpx.Client, exam_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Results regenerate by themselves after an import (no generate call)."""
    deadline = time.monotonic() + timeout
    while True:
        exam: dict[str, Any] = ok(client.get(f"/api/v1/exams/{exam_id}"))
        if not exam["results_stale"]:
            return exam
        assert time.monotonic() < deadline, "results did not regenerate after the import"
        time.sleep(0.2)


def admin_client(e2e: E2E, tokens: dict[str, str]) -> httpx.Client:
    return e2e.client(headers=bearer(tokens["access_token"]))
