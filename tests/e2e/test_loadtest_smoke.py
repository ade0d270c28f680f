"""The load test in `make test`: seeds a tiny results day through the session's gateway,
runs locust headless for a few seconds as `make loadtest` does, and holds it to zero
failures; then shows that the thresholds can fail a run (a p95 bound no request can
meet, and body checks that a 200 does not pass).

The smoke run's p95 bounds are loose (SMOKE_THRESHOLDS): ten seconds of twelve users
on a machine busy with the rest of `make test` say nothing about latency, and a
flaky bound would teach people to ignore the test. The shipped bounds are for
`make loadtest`; tests/loadtests checks that they load."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, E2E, ROOT

pytestmark = pytest.mark.e2e

SMOKE_THRESHOLDS = "max_failure_ratio = 0.0\n[p95_ms]\ndefault = 10000\n"


def run(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def locust(
    e2e: E2E, credentials: Path, reports: Path, seconds: int, *extra: str
) -> subprocess.CompletedProcess[str]:
    reports.mkdir(parents=True, exist_ok=True)
    return run(
        [
            "-m",
            "locust",
            "-f",
            "loadtests/locustfile.py",
            "--host",
            e2e.gateway,
            "--headless",
            "--users",
            "12",
            "--spawn-rate",
            "12",
            "--run-time",
            f"{seconds}s",
            "--stop-timeout",
            "5",
            "--credentials",
            str(credentials),
            "--stream-seconds",
            "2",
            "--think-scale",
            "0.1",
            "--only-summary",
            "--csv",
            str(reports / "run"),
            "--html",
            str(reports / "run.html"),
            *extra,
        ],
        timeout=seconds + 60,
    )


def stats_rows(reports: Path) -> dict[str, dict[str, str]]:
    with (reports / "run_stats.csv").open() as file:
        return {row["Name"]: row for row in csv.DictReader(file)}


@pytest.fixture(scope="module")
def credentials(e2e: E2E, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("loadtest") / "credentials.json"
    seeded = run(
        [
            "-m",
            "loadtests.seed",
            "--gateway",
            e2e.gateway,
            "--admin-email",
            ADMIN_EMAIL,
            "--admin-password",
            ADMIN_PASSWORD,
            "--students",
            "30",
            "--examiners",
            "2",
            "--exams",
            "2",
            "--workbench-exams",
            "1",
            "--out",
            str(out),
        ],
        timeout=180,
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    data = json.loads(out.read_text())
    assert len(data["students"]) == 30 and len(data["examiners"]) == 2
    assert [e["status"] for e in data["exams"]] == ["published", "published"]
    assert [e["status"] for e in data["workbench"]] == ["draft"]
    # A second run finds it all again and changes nothing.
    again = run(["-m", "loadtests.seed", *seeded.args[3:]], timeout=60)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to do" in again.stdout
    return out


def test_a_short_mixed_run_has_no_failures_and_holds_its_thresholds(
    e2e: E2E, credentials: Path, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    bounds = tmp_path / "thresholds.toml"
    bounds.write_text(SMOKE_THRESHOLDS)
    result = locust(e2e, credentials, reports, 10, "--thresholds", str(bounds))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "thresholds held" in output
    rows = stats_rows(reports)
    total = rows["Aggregated"]
    assert int(total["Request Count"]) > 50 and total["Failure Count"] == "0", total
    # Every flow ran: the sign-in session, the student's visit with its live
    # stream, the examiner's upload and the admin's publication and download.
    for name in (
        "POST /auth/logout",
        "GET /me/results",
        "GET /notifications/stream",
        "POST /exams/{id}/imports",
        "POST /exams/{id}/publish",
        "GET /jobs/{id}/download",
    ):
        assert name in rows, sorted(rows)
    assert (reports / "run.html").stat().st_size > 1000
    assert (reports / "run_failures.csv").is_file()


def test_thresholds_fail_a_run_on_latency_and_on_wrong_bodies(
    e2e: E2E, credentials: Path, tmp_path: Path
) -> None:
    # Each student is told to expect more published results than they have: every
    # GET /me/results is a 200 whose body is wrong for them.
    data = json.loads(credentials.read_text())
    for student in data["students"]:
        student["published_exams"] = 99
    wrong = tmp_path / "credentials.json"
    wrong.write_text(json.dumps(data))
    bounds = tmp_path / "thresholds.toml"
    bounds.write_text('max_failure_ratio = 0.0\n[p95_ms]\ndefault = 60000\n"GET /auth/me" = 0\n')
    reports = tmp_path / "reports"

    result = locust(e2e, wrong, reports, 5, "--thresholds", str(bounds))

    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-6000:]
    assert "thresholds crossed" in output
    assert "GET /auth/me: p95" in output and "above 0 ms" in output
    assert "failure ratio" in output
    rows = stats_rows(reports)
    assert int(rows["GET /me/results"]["Failure Count"]) > 0
    with (reports / "run_failures.csv").open() as file:
        messages = [row["Error"] for row in csv.DictReader(file)]
    assert any("99 seeded" in m for m in messages), messages
