"""Results day at the gateway: students (most of the crowd), whole sign-in sessions,
examiners and the admin, with think times and checked bodies.

    uv run python -m loadtests.seed                      # once: accounts and exams
    uv run locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 \\
        --headless -u 100 -r 10 -t 2m --csv loadtests/reports/run --html loadtests/reports/run.html

(``make loadtest`` does both.) The flows are in ``loadtests/flows/``; the bounds the
run is held to in ``loadtests/thresholds.toml``: a run that crosses one exits 1.
Options of this file (also as environment variables):

- ``--credentials`` (``LOADTEST_CREDENTIALS``): the seed's file;
- ``--thresholds`` (``LOADTEST_THRESHOLDS``): the bounds;
- ``--stream-seconds`` (``LOADTEST_STREAM_SECONDS``): how long a student holds the live stream;
- ``--think-scale`` (``LOADTEST_THINK_SCALE``): multiplies every think time (0: none);
- ``--job-timeout`` (``LOADTEST_JOB_TIMEOUT``): longest wait for an import or export job.

Every simulated user comes from 127.0.0.1, so the suite must allow that many
sign-ins per address (``LOGIN_MAX_ATTEMPTS_PER_IP``; README, Load tests).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# locust imports this file by path; the flows are the package next to it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from locust import events

from loadtests import thresholds
from loadtests.flows.admin import AdminUser
from loadtests.flows.common import DEFAULT_CREDENTIALS, SETTINGS
from loadtests.flows.examiner import ExaminerUser
from loadtests.flows.signin import SignInUser
from loadtests.flows.student import StudentUser

__all__ = ["AdminUser", "ExaminerUser", "SignInUser", "StudentUser"]


def add_options(parser: Any, **_kwargs: Any) -> None:
    parser.add_argument(
        "--credentials",
        env_var="LOADTEST_CREDENTIALS",
        default=str(DEFAULT_CREDENTIALS),
        help="the seed's credentials file (python -m loadtests.seed)",
    )
    parser.add_argument(
        "--thresholds",
        env_var="LOADTEST_THRESHOLDS",
        default=str(thresholds.DEFAULT_FILE),
        help="failure ratio and p95 bounds the run is held to",
    )
    parser.add_argument(
        "--stream-seconds",
        type=float,
        env_var="LOADTEST_STREAM_SECONDS",
        default=5.0,
        help="how long a student holds the live notification stream",
    )
    parser.add_argument(
        "--think-scale",
        type=float,
        env_var="LOADTEST_THINK_SCALE",
        default=1.0,
        help="multiplies every think time (0: none)",
    )
    parser.add_argument(
        "--job-timeout",
        type=float,
        env_var="LOADTEST_JOB_TIMEOUT",
        default=60.0,
        help="longest wait for an import or export job, in seconds",
    )


def configure(environment: Any, **_kwargs: Any) -> None:
    options = environment.parsed_options
    if options is None:  # locust used as a library: the caller configures
        return
    SETTINGS.load(Path(options.credentials))
    SETTINGS.stream_seconds = options.stream_seconds
    SETTINGS.think_scale = options.think_scale
    SETTINGS.job_timeout = options.job_timeout
    bounds = thresholds.load(Path(options.thresholds))
    environment.events.quitting.add_listener(thresholds.at_quit(bounds))


events.init_command_line_parser.add_listener(add_options)
events.init.add_listener(configure)
