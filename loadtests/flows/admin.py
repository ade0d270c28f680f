"""The admin on results day: publishes a late exam (created, marked, generated, published:
its students are notified while they read) and exports results, polling the job and
downloading the file."""

from __future__ import annotations

import csv
import io
import random
import uuid
from typing import Any

from locust import task

from loadtests.flows.checks import EXAM, GENERATION, JOB
from loadtests.flows.common import API, SETTINGS, SignedIn, body_of, fail_unless, think

EXPORT_COLUMNS = [
    "student_number",
    "student_name",
    "status",
    "total",
    "max_total",
    "percentage",
    "grade",
    "gpa",
    "passed",
    "rank",
]
LATE_SUBJECTS = [("MATH", 100), ("PHYS", 50)]
LATE_CANDIDATES = 30


class AdminUser(SignedIn):
    role = "admin"
    weight = 1
    wait_time = think(2.0, 5.0)

    def on_start(self) -> None:
        super().on_start()
        self.published: list[dict[str, Any]] = []

    @task
    def work(self) -> None:
        """A late exam published, then two exports (a think time between)."""
        self.publish_late_exam()
        for _ in range(2):
            self.pause()
            self.export_results()

    def late_exam(self) -> dict[str, Any] | None:
        prefix = SETTINGS.credentials["scale"]["prefix"]
        code = f"{prefix}-LATE-{uuid.uuid4().hex[:10].upper()}"
        body = {
            "code": code,
            "name": f"Late exam {code}",
            "subjects": [
                {"code": c, "name": c.title(), "max_mark": m, "pass_mark": m // 2}
                for c, m in LATE_SUBJECTS
            ],
            "grading_scale": [
                {"grade": "P", "min_percent": 50, "points": 1},
                {"grade": "F", "min_percent": 0, "points": 0},
            ],
            "pass_percent": 50,
        }
        with self.client.post(
            f"{API}/exams", json=body, headers=self.auth, name="POST /exams", catch_response=True
        ) as response:
            exam = body_of(response, 201, EXAM)
            if exam is None or not fail_unless(
                response,
                exam["code"] == code and exam["status"] == "draft",
                f"created {exam['code']} {exam['status']}, not a draft {code}",
            ):
                return None
            return dict(exam)

    def publish_late_exam(self) -> None:
        exam = self.late_exam()
        if exam is None:
            return
        students = random.sample(
            SETTINGS.credentials["students"],
            min(LATE_CANDIDATES, len(SETTINGS.credentials["students"])),
        )
        marks = [
            {
                "student_number": s["student_number"],
                "subject_code": code,
                "status": "present",
                "mark": round(random.uniform(0, max_mark), 2),
            }
            for s in students
            for code, max_mark in LATE_SUBJECTS
        ]
        with self.client.put(
            f"{API}/exams/{exam['id']}/marks",
            json={"marks": marks},
            headers=self.auth,
            name="PUT /exams/{id}/marks",
            catch_response=True,
        ) as response:
            written = body_of(response, 200, {"written": int, "unchanged": int})
            if written is None or not fail_unless(
                response, written["written"] == len(marks), f"{written} for {len(marks)} marks"
            ):
                return
        with self.client.post(
            f"{API}/exams/{exam['id']}/results/generate",
            headers=self.auth,
            name="POST /exams/{id}/results/generate",
            catch_response=True,
        ) as response:
            generation = body_of(response, 200, GENERATION)
            if generation is None or not fail_unless(
                response,
                generation["candidates"] == len(students),
                f"{generation['candidates']} candidates, {len(students)} marked",
            ):
                return
        with self.client.post(
            f"{API}/exams/{exam['id']}/publish",
            json={},
            headers=self.auth,
            name="POST /exams/{id}/publish",
            catch_response=True,
        ) as response:
            published = body_of(response, 200, EXAM)
            if published is None or not fail_unless(
                response,
                published["id"] == exam["id"]
                and published["status"] == "published"
                and published["published_at"] is not None,
                f"after publishing: {published['status']}, at {published['published_at']}",
            ):
                return
        self.published.append(
            {
                "id": exam["id"],
                "subjects": [c for c, _ in LATE_SUBJECTS],
                "candidates": len(students),
            }
        )

    def export_results(self) -> None:
        exam = random.choice(SETTINGS.credentials["exams"] + self.published)
        with self.client.post(
            f"{API}/exams/{exam['id']}/exports",
            headers=self.auth,
            name="POST /exams/{id}/exports",
            catch_response=True,
        ) as response:
            job = body_of(response, 202, JOB)
            if job is None or not fail_unless(
                response, job["kind"] == "results_export", f"an export job of kind {job['kind']}"
            ):
                return

        def verdict(final: dict[str, Any]) -> str | None:
            return None if final["status"] == "succeeded" else f"export {final['status']}"

        if self.wait_for_job(job["id"], verdict) is None:
            return
        with self.client.get(
            f"{API}/jobs/{job['id']}/download",
            headers=self.auth,
            name="GET /jobs/{id}/download",
            catch_response=True,
        ) as response:
            if body_of(response, 200) is None:
                return
            content_type = response.headers.get("Content-Type", "")
            disposition = response.headers.get("Content-Disposition", "")
            if not fail_unless(
                response,
                content_type.startswith("text/csv") and disposition.startswith("attachment"),
                f"download as {content_type!r}, {disposition!r}",
            ):
                return
            text = (response.content or b"").decode("utf-8-sig")
            rows = list(csv.reader(io.StringIO(text)))
            expected = EXPORT_COLUMNS + exam["subjects"]
            fail_unless(
                response,
                bool(rows) and rows[0] == expected and len(rows) - 1 == exam["candidates"],
                f"export of {len(rows) - 1} rows with header {rows[:1]}; expected "
                f"{exam['candidates']} rows under {expected}",
            )
