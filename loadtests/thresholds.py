"""The bounds a load test run is held to, and the verdict that sets its exit code.

``thresholds.toml`` holds ``max_failure_ratio`` (failed requests / requests over the
whole run) and ``[p95_ms]``: the 95th percentile bound in milliseconds per request
name (as locust names them, e.g. ``"GET /me/results"``), with ``default`` for every
name not listed. When locust quits, :func:`verdict` compares the run's statistics with
them; anything crossed makes ``environment.process_exit_code`` 1, so a headless run
fails, and is printed. An exception in a user's code (a flow that broke) and a run
without a single request fail it too.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("loadtests.thresholds")

DEFAULT_FILE = Path(__file__).resolve().parent / "thresholds.toml"


@dataclass(frozen=True)
class Thresholds:
    max_failure_ratio: float = 0.0
    default_p95_ms: float = 1000.0
    p95_ms: dict[str, float] = field(default_factory=dict)

    def bound(self, name: str) -> float:
        return self.p95_ms.get(name, self.default_p95_ms)


def load(path: Path) -> Thresholds:
    data = tomllib.loads(path.read_text())
    bounds = {str(k): float(v) for k, v in data.get("p95_ms", {}).items()}
    default = bounds.pop("default", Thresholds.default_p95_ms)
    return Thresholds(
        max_failure_ratio=float(data.get("max_failure_ratio", 0.0)),
        default_p95_ms=default,
        p95_ms=bounds,
    )


def verdict(stats: Any, thresholds: Thresholds, user_errors: int) -> list[str]:
    """What the run crossed; empty when it passes. ``stats`` is locust's RequestStats."""
    crossed: list[str] = []
    total = stats.total
    if total.num_requests == 0:
        crossed.append("no request was made")
    elif total.fail_ratio > thresholds.max_failure_ratio:
        crossed.append(
            f"failure ratio {total.fail_ratio:.4f} ({total.num_failures} of "
            f"{total.num_requests}) above {thresholds.max_failure_ratio}"
        )
    if user_errors:
        crossed.append(f"{user_errors} exceptions in the flows' code")
    for entry in sorted(stats.entries.values(), key=lambda e: e.name):
        if entry.num_requests == 0:
            continue
        p95 = entry.get_response_time_percentile(0.95)
        bound = thresholds.bound(entry.name)
        if p95 > bound:
            crossed.append(f"{entry.method} {entry.name}: p95 {p95:.0f} ms above {bound:.0f} ms")
    return crossed


def at_quit(thresholds: Thresholds) -> Callable[..., None]:
    """locust's ``quitting`` listener: prints the verdict and sets the exit code."""

    def check(environment: Any, **_kwargs: Any) -> None:
        runner = environment.runner
        errors = sum(e["occurrences"] for e in runner.exceptions.values()) if runner else 0
        crossed = verdict(environment.stats, thresholds, errors)
        if crossed:
            log.error("thresholds crossed:\n  %s", "\n  ".join(crossed))
            environment.process_exit_code = 1
        else:
            log.info(
                "thresholds held: failure ratio <= %s, every p95 within its bound",
                thresholds.max_failure_ratio,
            )

    return check
