"""No drift between the dashboards and rules and what the services export (issue 11).

A short workload goes through the gateway (sign-in and refresh, an exam with
marks generated and published, a marks import, a student reading a
notification), then every process of the suite is scraped: the API processes,
the gateway's metrics port and bulk's worker. Every PromQL expression of every
committed dashboard panel and of every rule is parsed (deploy/observability/
references.py) and each metric it selects must be among the scraped sample
names, with the labels it matches on; a recording rule's output must be
written by a rule instead.

Metrics that only appear after a rare event (a dead letter, a shed sign-in) are
created at start by the services (the label sets that matter, at 0), so the
test needs no such event and never skips one.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
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
from metrics_support import scrape_all
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "deploy" / "observability"))

import references  # noqa: E402

pytestmark = pytest.mark.e2e


def exported(texts: dict[str, str]) -> dict[str, set[str]]:
    """Sample name -> the label names its samples carry, over every process."""
    found: dict[str, set[str]] = {}
    for text in texts.values():
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                found.setdefault(sample.name, set()).update(sample.labels)
    return found


def samples(texts: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    return [
        (sample.name, dict(sample.labels))
        for text in texts.values()
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def scrape(e2e: E2E) -> dict[str, str]:
    return {found.process: found.text for found in scrape_all(e2e)}


def workload(e2e: E2E, admin_tokens: dict[str, str]) -> None:
    with admin_client(e2e, admin_tokens) as admin:
        students = [create_user(admin, "student") for _ in range(2)]
        examiner = create_user(admin, "examiner")
        exam = create_exam(admin, [("MATH", 100)], name=f"Drift {uuid.uuid4().hex[:6]}")
        mark = {"student_number": students[0]["student_number"], "subject_code": "MATH"}
        ok(
            admin.put(
                f"/api/v1/exams/{exam['id']}/marks",
                json={"marks": [mark | {"status": "present", "mark": 40}]},
            )
        )
    # A marks import by an examiner, through bulk's worker and results' chunks.
    examiner_token = login(e2e, examiner["email"])
    body = f"student_number,subject_code,mark\r\n{students[1]['student_number']},MATH,75\r\n"
    with e2e.client(headers=bearer(examiner_token)) as client:
        job = ok(upload(client, f"/api/v1/exams/{exam['id']}/imports", body.encode()), 202)
        assert wait_for_job(client, job["id"])["status"] == "succeeded"
    # Generation and publication.
    with admin_client(e2e, admin_tokens) as admin:
        ok(admin.post(f"/api/v1/exams/{exam['id']}/results/generate"))
        ok(admin.post(f"/api/v1/exams/{exam['id']}/publish"))
        ok(admin.get(f"/api/v1/exams/{exam['id']}"))
    # Sign-in and a token refresh.
    with e2e.client() as client:
        tokens = ok(
            client.post(
                "/api/v1/auth/login",
                json={"email": students[0]["email"], "password": PASSWORD},
            )
        )
        ok(client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}))
    # A student reads the notification of the publication, and their results.
    with e2e.client(headers=bearer(tokens["access_token"])) as client:
        deadline = time.monotonic() + 30
        while True:
            items: list[dict[str, Any]] = ok(client.get("/api/v1/notifications"))["items"]
            if items:
                break
            assert time.monotonic() < deadline, "the publication's notification never came"
            time.sleep(0.2)
        ok(client.get("/api/v1/me/results"))


def test_every_metric_of_the_dashboards_and_rules_is_exported(
    e2e: E2E, admin_tokens: dict[str, str]
) -> None:
    refs = references.references()
    assert len({r.metric for r in refs}) > 40, "the dashboards and rules were not read"
    workload(e2e, admin_tokens)
    # Relays, consumers and deliveries finish a moment after the answers.
    deadline = time.monotonic() + 30
    while True:
        problems = references.problems(exported(scrape(e2e)))
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert problems == [], "used by a dashboard or rule, not exported:\n" + "\n".join(problems)

    # The SLOs by value too: the workload's own gateway requests are selected (routes,
    # service, the le="0.5" bucket boundary); only the 5xx matcher may find nothing.
    scraped = samples(scrape(e2e))
    empty = sorted(
        {
            f"{rule}: {metric}{{{', '.join(f'{label}{op}{v!r}' for label, op, v in found)}}}"
            for rule, metric, found in references.slo_selectors()
            if not any(
                name == metric
                and references.matches([m for m in found if m[0] != "status"], labels)
                for name, labels in scraped
            )
        }
    )
    assert empty == [], "SLO selectors that select nothing the gateway exports:\n" + "\n".join(
        empty
    )


def test_the_check_sees_a_missing_metric_and_a_missing_label() -> None:
    """The comparison itself: a renamed metric or label is reported, a histogram's
    series are found under the sample names Prometheus stores."""
    exported_now = {
        "http_requests_total": {"service", "method", "route", "status"},
        "http_request_duration_seconds_bucket": {"service", "route", "le"},
    }
    found = {
        (ref.metric, ref.labels - references.scraped_labels(exported_now.get(ref.metric, set())))
        for ref in references.references()
        if ref.metric.startswith("http_request")
    }
    assert ("http_requests_total", frozenset()) in found
    assert any(metric == "http_request_duration_seconds_count" for metric, _ in found)
    problems = references.problems(exported_now)
    assert any("http_request_duration_seconds_count is not exported" in p for p in problems)
    assert not any("http_requests_total is not exported" in p for p in problems)
    renamed = {"http_requests_total": {"service", "method", "route", "code"}}
    assert any("http_requests_total has no label status" in p for p in references.problems(renamed))
