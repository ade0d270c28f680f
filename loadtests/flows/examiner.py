"""An examiner still at work on results day, on the seed's workbench exams (drafts open
to every examiner): the exams, a batch of marks, a generation, the results, and a
small CSV uploaded and followed until its job is done."""

from __future__ import annotations

import random
from typing import Any

from locust import task

from loadtests.flows.checks import EXAM, GENERATION, JOB, RESULT, page
from loadtests.flows.common import API, SETTINGS, SignedIn, body_of, fail_unless, think

BATCH = 25
"""Marks in one ``PUT /exams/{id}/marks``."""
UPLOAD_ROWS = 20
"""Rows of the small CSV an examiner uploads."""


def random_marks(exam: dict[str, Any], count: int) -> list[tuple[str, str, str]]:
    """``count`` distinct (student number, subject, mark) of the exam's roster."""
    pairs: set[tuple[str, str]] = set()
    numbers = exam["student_numbers"]
    subjects = exam["subjects"]
    count = min(count, len(numbers) * len(subjects))
    while len(pairs) < count:
        pairs.add((random.choice(numbers), random.choice(subjects)))
    # Max marks are 100 or 50 (seed.Scale.subjects): 0-50 is valid for both.
    return [(n, s, f"{random.uniform(0, 50):.2f}") for n, s in sorted(pairs)]


class ExaminerUser(SignedIn):
    role = "examiner"
    weight = 3
    wait_time = think(1.0, 4.0)

    def on_start(self) -> None:
        super().on_start()
        self.exam: dict[str, Any] = random.choice(SETTINGS.credentials["workbench"])

    @task
    def work(self) -> None:
        """The exams, a batch of marks, a generation, the results, an upload; a think time
        between steps."""
        for step in (self.list_exams, self.write_marks, self.generate, self.list_results):
            step()
            self.pause()
        self.upload_marks()

    def list_exams(self) -> None:
        with self.client.get(
            f"{API}/exams?limit=20", headers=self.auth, name="GET /exams", catch_response=True
        ) as response:
            body = body_of(response, 200, page(EXAM))
            if body is not None:
                fail_unless(response, len(body["items"]) >= 1, "no exams listed")

    def write_marks(self) -> None:
        marks = [
            {"student_number": n, "subject_code": s, "status": "present", "mark": float(m)}
            for n, s, m in random_marks(self.exam, BATCH)
        ]
        with self.client.put(
            f"{API}/exams/{self.exam['id']}/marks",
            json={"marks": marks},
            headers=self.auth,
            name="PUT /exams/{id}/marks",
            catch_response=True,
        ) as response:
            body = body_of(response, 200, {"written": int, "unchanged": int})
            if body is not None:
                fail_unless(
                    response,
                    body["written"] + body["unchanged"] == len(marks),
                    f"{body} for {len(marks)} marks",
                )

    def generate(self) -> None:
        with self.client.post(
            f"{API}/exams/{self.exam['id']}/results/generate",
            headers=self.auth,
            name="POST /exams/{id}/results/generate",
            catch_response=True,
        ) as response:
            body = body_of(response, 200, GENERATION)
            if body is not None:
                fail_unless(
                    response,
                    body["exam_id"] == self.exam["id"]
                    and body["candidates"] == self.exam["candidates"]
                    and body["generation"] >= 1,
                    f"generation of {body['exam_id']}: {body['candidates']} candidates, "
                    f"generation {body['generation']}; expected {self.exam['candidates']}",
                )

    def list_results(self) -> None:
        with self.client.get(
            f"{API}/exams/{self.exam['id']}/results?limit=50",
            headers=self.auth,
            name="GET /exams/{id}/results",
            catch_response=True,
        ) as response:
            body = body_of(response, 200, page(RESULT))
            if body is None:
                return
            items = body["items"]
            fail_unless(
                response,
                len(items) == min(50, self.exam["candidates"])
                and all(r["exam_id"] == self.exam["id"] for r in items),
                f"{len(items)} results (expected {min(50, self.exam['candidates'])}) "
                f"of exams {sorted({r['exam_id'] for r in items})[:2]}",
            )

    def upload_marks(self) -> None:
        rows = random_marks(self.exam, UPLOAD_ROWS)
        csv = "student_number,subject_code,mark\n" + "".join(f"{n},{s},{m}\n" for n, s, m in rows)
        with self.client.post(
            f"{API}/exams/{self.exam['id']}/imports",
            data=csv,
            headers={**self.auth, "Content-Type": "text/csv"},
            name="POST /exams/{id}/imports",
            catch_response=True,
        ) as response:
            job = body_of(response, 202, JOB)
            if job is None or not fail_unless(
                response,
                job["kind"] == "marks_import" and job["status"] not in ("failed", "cancelled"),
                f"a new import job is {job['kind']} {job['status']}",
            ):
                return

        def verdict(final: dict[str, Any]) -> str | None:
            if (
                final["status"] == "succeeded"
                and final["rows_total"] == len(rows)
                and final["rows_ok"] + final["rows_unchanged"] == len(rows)
                and final["rows_failed"] == 0
            ):
                return None
            return (
                f"import {final['status']}: {final['rows_total']} rows, {final['rows_ok']} ok, "
                f"{final['rows_unchanged']} unchanged, {final['rows_failed']} failed"
            )

        self.wait_for_job(job["id"], verdict)
