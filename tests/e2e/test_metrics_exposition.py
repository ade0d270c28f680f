"""Every process's real ``/metrics`` after a small workload through the gateway (issue 11,
docs/observability.md): `promtool check metrics` finds nothing wrong with any of them,
the metrics of the issue's list are there, and the gateway never serves them."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from bulk_support import (
    PASSWORD,
    admin_client,
    create_exam,
    create_user,
    login,
    ok,
    upload,
    wait_for_job,
)
from conftest import E2E, bearer
from metrics_support import Scrape, scrape_all
from prometheus_client.samples import Sample

pytestmark = pytest.mark.e2e

PROMTOOL = shutil.which("promtool")
UUID_IN_PATH = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")


def eventually(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not in time: {what}"
        time.sleep(0.1)


def drive_workload(e2e: E2E, admin_tokens: dict[str, str]) -> None:
    """Login (good and bad), an exam with marks generated and published, exam reads
    twice (cache miss then hit), a bulk import; waits for the publication email."""
    with admin_client(e2e, admin_tokens) as admin:
        student = create_user(admin, "student")
        examiner = create_user(admin, "examiner")
        exam = create_exam(admin, [("MATH", 100)], name=f"Metrics {uuid.uuid4().hex[:4]}")
        marks = [
            {
                "student_number": student["student_number"],
                "subject_code": "MATH",
                "status": "present",
                "mark": 61,
            }
        ]
        ok(admin.put(f"/api/v1/exams/{exam['id']}/marks", json={"marks": marks}))
        ok(admin.post(f"/api/v1/exams/{exam['id']}/results/generate"))
        for _ in range(2):
            ok(admin.get(f"/api/v1/exams/{exam['id']}"))
        ok(admin.post(f"/api/v1/exams/{exam['id']}/publish"))
        imported = create_exam(admin, [("MATH", 100)], name="Metrics import")
        assert admin.get(f"/api/v1/exams/{uuid.uuid4()}").status_code == 404
    with e2e.client() as client:
        refused = client.post(
            "/api/v1/auth/login", json={"email": student["email"], "password": "not-" + PASSWORD}
        )
        assert refused.status_code == 401, refused.text
    student_token = login(e2e, student["email"])
    with e2e.client(headers=bearer(student_token)) as client:
        for _ in range(2):
            ok(client.get(f"/api/v1/exams/{exam['id']}/results/{student['student_number']}"))
    body = f"student_number,subject_code,mark\r\n{student['student_number']},MATH,70\r\n".encode()
    with e2e.client(headers=bearer(login(e2e, examiner["email"]))) as client:
        job = ok(upload(client, f"/api/v1/exams/{imported['id']}/imports", body), 202)
        assert wait_for_job(client, job["id"])["status"] == "succeeded"
    eventually(lambda: e2e.mail.to(student["email"]), what="the publication email")


@pytest.fixture(scope="module")
def scrapes(e2e: E2E, admin_tokens: dict[str, str]) -> list[Scrape]:
    drive_workload(e2e, admin_tokens)
    found = scrape_all(e2e)
    for scrape in found:
        assert scrape.content_type.startswith("text/plain"), scrape.process
    return found


def test_every_process_serves_metrics_promtool_accepts(scrapes: list[Scrape]) -> None:
    if PROMTOOL is None:
        pytest.fail(
            "promtool is not installed: `make test` installs Debian's prometheus (make system-deps)"
        )
    assert {s.service for s in scrapes} == {"gateway", "auth", "results", "bulk", "notifier"}
    assert any(s.process.startswith("bulk-worker-") for s in scrapes)
    problems = {}
    for scrape in scrapes:
        checked = subprocess.run(
            [PROMTOOL, "check", "metrics"],
            input=scrape.text.encode(),
            capture_output=True,
            timeout=60,
            check=False,
        )
        # promtool prints lint problems and exits non-zero; a clean exposition prints
        # nothing at all.
        report = (checked.stdout + checked.stderr).decode().strip()
        if checked.returncode != 0 or report:
            problems[scrape.process] = report or f"exit {checked.returncode}"
    assert problems == {}


# What the issue's list asks for, by the service whose processes must export it
# (any of them: bulk's import metrics come from whichever worker ran the job).
REQUIRED: dict[str, tuple[str, ...]] = {
    "gateway": (
        "http_request_duration_seconds_bucket",
        "http_requests_total",
        "gateway_upstream_response_seconds_bucket",
        "redis_pool_connections_open",
    ),
    "auth": (
        "http_request_duration_seconds_bucket",
        "auth_login_attempts_total",
        "auth_password_hash_queue_wait_seconds_bucket",
        "auth_password_hash_in_flight",
        "db_pool_connections_in_use",
        "db_pool_connections_open",
        "db_pool_connections_max",
        "redis_pool_connections_in_use",
        "redis_pool_connections_open",
        "redis_pool_connections_max",
        "outbox_backlog",
        "outbox_oldest_unsent_age_seconds",
    ),
    "results": (
        "http_request_duration_seconds_bucket",
        "results_generation_duration_seconds_bucket",
        "results_generation_rows_changed_total",
        "results_generations_total",
        "lock_wait_seconds_bucket",
        "lock_acquisitions_total",
        "results_cache_requests_total",
        "results_import_rows_total",
        "messages_handled_total",
        "faststream_received_messages_total",
        "faststream_received_processed_messages_duration_seconds_bucket",
        "periodic_job_runs_total",
        "periodic_job_last_success_timestamp_seconds",
        "outbox_backlog",
        "outbox_oldest_unsent_age_seconds",
        "db_pool_connections_in_use",
        "redis_pool_connections_in_use",
    ),
    "bulk": (
        "http_request_duration_seconds_bucket",
        "bulk_import_rows_total",
        "bulk_job_duration_seconds_bucket",
        "bulk_jobs_finished_total",
        "db_pool_connections_in_use",
    ),
    "notifier": (
        "http_request_duration_seconds_bucket",
        "notifier_deliveries_total",
        "notifier_deliveries_dead_lettered_total",
        "messages_handled_total",
        "faststream_received_messages_total",
        "periodic_job_last_success_timestamp_seconds",
        "db_pool_connections_in_use",
    ),
}


def samples_of(scrapes: list[Scrape], service: str) -> list[Sample]:
    return [s for scrape in scrapes if scrape.service == service for s in scrape.samples()]


def has(samples: list[Sample], name: str, **labels: str) -> bool:
    return any(
        s.name == name and all(s.labels.get(k) == v for k, v in labels.items()) for s in samples
    )


@pytest.mark.parametrize("service", sorted(REQUIRED))
def test_the_issue_metrics_are_exported(scrapes: list[Scrape], service: str) -> None:
    names = {s.name for s in samples_of(scrapes, service)}
    assert [n for n in REQUIRED[service] if n not in names] == []


def test_the_workload_shows_in_the_labels(scrapes: list[Scrape]) -> None:
    gateway = samples_of(scrapes, "gateway")
    auth = samples_of(scrapes, "auth")
    results = samples_of(scrapes, "results")
    bulk = samples_of(scrapes, "bulk")
    notifier = samples_of(scrapes, "notifier")
    # RED by route template and status class, never a raw path.
    for status_class in ("2xx", "4xx"):
        assert has(
            results,
            "http_request_duration_seconds_count",
            route="/api/v1/exams/{exam_id}",
            status_class=status_class,
        ), status_class
    assert has(gateway, "http_requests_total", status="404")
    raw_paths = {
        s.labels["route"]
        for s in gateway + auth + results + bulk + notifier
        if UUID_IN_PATH.search(s.labels.get("route", ""))
    }
    assert raw_paths == set()
    assert has(auth, "auth_login_attempts_total", outcome="success")
    assert has(auth, "auth_login_attempts_total", outcome="invalid_credentials")
    assert has(results, "results_generations_total", outcome="committed")
    assert has(results, "results_generations_total", outcome="fenced")
    assert has(results, "lock_acquisitions_total", lock="exam", outcome="contended")
    for outcome in ("hit", "miss"):
        assert has(results, "results_cache_requests_total", outcome=outcome), outcome
    assert has(bulk, "bulk_import_rows_total", outcome="ok")
    assert has(bulk, "bulk_job_duration_seconds_count", status="succeeded")
    assert has(notifier, "notifier_deliveries_total", channel="email", outcome="sent")
    assert has(notifier, "notifier_deliveries_dead_lettered_total", channel="email")
    assert has(notifier, "messages_handled_total", outcome="dead_lettered")
    assert has(notifier, "faststream_received_processed_messages_total", status="acked")


def test_the_gateway_never_serves_metrics(e2e: E2E, scrapes: list[Scrape]) -> None:
    """Each upstream serves /metrics on its own port; through the gateway no path
    reaches one (it routes /api/v1/... only, and refuses dot segments)."""
    with e2e.client() as client:
        for path in (
            "/metrics",
            "/api/v1/metrics",
            "/api/v1/exams/../../../metrics",
            "/api/v1/exams/%2e%2e/%2e%2e/%2e%2e/metrics",
        ):
            response = client.get(path)
            assert response.status_code in (400, 404), (path, response.status_code)
            assert "# TYPE" not in response.text, path
    assert all("# TYPE" in s.text for s in scrapes)
