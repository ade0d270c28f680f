"""The load test's own logic, without a suite: body checks find what is wrong (and where),
stream checks want retry and an unread count, and the verdict fails a run on failures,
a p95 over its bound, an exception in a flow, or no request at all.

(locust is not imported here: it monkey-patches the process, which the e2e tests of
this suite share.)"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from loadtests.flows.checks import (  # noqa: E402
    JOB,
    NUMBER,
    RESULT,
    Nullable,
    page,
    problems,
    stream_problems,
)
from loadtests.thresholds import Thresholds, load, verdict  # noqa: E402

EXAM_ID = "0d4f6a52-5b7e-4d0c-9a43-6a3f0e9f1c11"


def result(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "exam_id": EXAM_ID,
        "student_number": "LT000001",
        "student_name": "Student 00001",
        "status": "complete",
        "total": 120.5,
        "max_total": 150,
        "percentage": 80.33,
        "grade": "A",
        "gpa": 4,
        "passed": True,
        "rank": 3,
        "generation": 2,
        "subjects": [
            {
                "code": "MATH",
                "status": "present",
                "mark": 70,
                "percentage": 70,
                "grade": "B",
                "points": 3,
                "passed": True,
            },
            {
                "code": "PHYS",
                "status": "absent",
                "mark": None,
                "percentage": None,
                "grade": None,
                "points": None,
                "passed": None,
            },
        ],
    }
    body.update(changes)
    return body


def test_a_right_body_passes_and_each_wrong_field_is_named_with_its_path() -> None:
    assert problems(result(), RESULT) == []
    assert problems({"items": [result()], "next_cursor": None}, page(RESULT)) == []

    wrong = result(exam_id="not-a-uuid", rank="3", passed=1, status="done")
    del wrong["grade"]
    subjects = wrong["subjects"]
    assert isinstance(subjects, list)
    subjects[0]["mark"] = "70"
    found = problems(wrong, RESULT)
    assert any(p.startswith("$.exam_id:") for p in found)
    assert "$.grade: missing" in found
    assert any(p.startswith("$.rank: expected int, got str") for p in found)
    assert any(p.startswith("$.passed: expected bool") for p in found)
    assert any(p.startswith("$.status:") for p in found)
    assert any(p.startswith("$.subjects[0].mark:") for p in found)


def test_shapes_keep_bools_out_of_numbers_and_nulls_where_allowed() -> None:
    assert problems(True, NUMBER) == ["$: expected int or float, got bool"]
    assert problems(None, Nullable(int)) == []
    assert problems(None, int) == ["$: expected int, got NoneType"]
    assert problems([], {"a": int}) == ["$: expected an object, got list"]
    assert problems({"items": "x", "next_cursor": None}, page(JOB)) == [
        "$.items: expected an array, got str"
    ]


def event(kind: str, data: object, **fields: str) -> dict[str, str]:
    return {"event": kind, "data": json.dumps(data), **fields}


def test_a_stream_opens_with_retry_and_an_unread_count() -> None:
    notification = {
        "id": EXAM_ID,
        "kind": "results_published",
        "title": "Results",
        "body": "Your results are out",
        "data": {},
        "created_at": "2026-12-06T05:07:08.657103Z",
        "read_at": None,
    }
    opened = [{"retry": "3000"}, event("unread_count", {"unread_count": 2})]
    assert stream_problems(opened) == []
    assert stream_problems([*opened, event("notification", notification, id="17")]) == []

    assert "did not open with retry" in stream_problems(opened[1:])[0]
    assert stream_problems(opened[:1]) == ["no unread_count event"]
    assert stream_problems([opened[0], event("unread_count", {"unread_count": "2"})]) == [
        "$unread_count.unread_count: expected int, got str"
    ]
    assert any(
        "without an id" in p
        for p in stream_problems([*opened, event("notification", notification)])
    )


@dataclass
class Entry:
    name: str
    method: str
    p95: float
    num_requests: int = 10

    def get_response_time_percentile(self, share: float) -> float:
        assert share == 0.95
        return self.p95


@dataclass
class Total:
    num_requests: int
    num_failures: int = 0

    @property
    def fail_ratio(self) -> float:
        return self.num_failures / self.num_requests if self.num_requests else 0.0


@dataclass
class Stats:
    total: Total
    entries: dict[tuple[str, str], Entry] = field(default_factory=dict)


def stats(*entries: Entry, failures: int = 0) -> Stats:
    total = Total(sum(e.num_requests for e in entries), failures)
    return Stats(total, {(e.name, e.method): e for e in entries})


def test_the_verdict_holds_a_run_to_its_failure_ratio_and_p95_bounds(tmp_path: Path) -> None:
    file = tmp_path / "thresholds.toml"
    file.write_text('max_failure_ratio = 0.0\n[p95_ms]\ndefault = 100\n"POST /auth/login" = 2000\n')
    bounds = load(file)
    assert bounds == Thresholds(0.0, 100.0, {"POST /auth/login": 2000.0})

    login = Entry("POST /auth/login", "POST", 1500)
    me = Entry("GET /auth/me", "GET", 40)
    assert verdict(stats(login, me), bounds, 0) == []

    slow = Entry("GET /auth/me", "GET", 140)
    assert verdict(stats(login, slow), bounds, 0) == ["GET GET /auth/me: p95 140 ms above 100 ms"]
    assert verdict(stats(login, me, failures=1), bounds, 0) == [
        "failure ratio 0.0500 (1 of 20) above 0.0"
    ]
    assert verdict(stats(login, me), bounds, 2) == ["2 exceptions in the flows' code"]
    assert verdict(stats(), bounds, 0) == ["no request was made"]


def test_the_shipped_thresholds_file_loads_and_bounds_every_name() -> None:
    bounds = load(ROOT / "loadtests" / "thresholds.toml")
    assert bounds.max_failure_ratio == 0.0
    assert bounds.bound("POST /auth/login") > bounds.bound("GET /auth/me") > 0
    assert bounds.bound("a name nobody listed") == bounds.default_p95_ms
