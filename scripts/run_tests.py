"""Runs each test suite in its own pytest process and prints one closing line.

One process per suite keeps each suite's conftest and fixtures to itself (the
suites are separate packages with same-named test modules), and a crash in one
suite still lets the others report. The closing line is the plain
``N passed, N failed`` form that CI reads.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)")


def run_suite(path: str) -> tuple[int, dict[str, int], float]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", path, "-q", "-p", "no:cacheprovider"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    sys.stdout.write(proc.stdout)
    sys.stdout.flush()
    counts: dict[str, int] = {}
    tail = proc.stdout.strip().splitlines()[-1:] or [""]
    for number, kind in SUMMARY.findall(tail[0]):
        key = "errors" if kind.startswith("error") else kind
        counts[key] = counts.get(key, 0) + int(number)
    return proc.returncode, counts, time.monotonic() - started


def main(paths: list[str]) -> int:
    totals: dict[str, int] = {}
    failed_suites: list[str] = []
    for path in paths:
        if not Path(path).is_dir() or not any(Path(path).rglob("test_*.py")):
            print(f"== {path}: no tests yet, skipped")
            continue
        print(f"== {path}", flush=True)
        code, counts, seconds = run_suite(path)
        print(f"== {path}: exit {code} in {seconds:.0f}s {counts}", flush=True)
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
        if code != 0:
            failed_suites.append(path)
    failed = totals.get("failed", 0) + totals.get("errors", 0)
    if failed_suites and failed == 0:
        failed = len(failed_suites)  # a suite that crashed before reporting counts
    if failed_suites:
        print("failing suites: " + ", ".join(failed_suites))
    print(f"{totals.get('passed', 0)} passed, {failed} failed, {totals.get('skipped', 0)} skipped")
    return 1 if failed_suites or totals.get("passed", 0) == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
