"""Schemathesis over the merged ``/openapi.json``, against the real gateway and services.

The document must tell the truth: every answer the suite gives is one the
document lists for that operation, in the schema it gives, with the headers it
names (every built-in check of schemathesis, status-code conformance included).
The run is bounded and repeatable: a fixed seed, derandomized generation, no
example database, a fixed number of examples per operation and phase.

It runs on a suite of its own, since it creates, changes and publishes things
no other test expects. Operations that would end the run's own access are
scoped (see ``_OPERATIONS``), and the personas run student first, then admin,
so nothing the admin does (deactivating the student, say) cuts a run short.

``FUZZ_SEED`` and ``FUZZ_MAX_EXAMPLES`` (default 50, about 5,000 requests and a
minute in all) change the run for an exploratory one.
"""

from __future__ import annotations

import os
import string
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from conftest import ADMIN_EMAIL, ADMIN_PASSWORD, E2E, bearer, running_suite
from hypothesis import strategies as st
from schemathesis import BaseSchema, engine
from schemathesis.engine import events

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SEED = int(os.environ.get("FUZZ_SEED", "20240611"))
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "50"))
STUDENT_PASSWORD = "fuzz-student-password"

# Statuses schemathesis accepts for schema-valid input (its default) and what the
# few operations below may answer on top: rules JSON Schema cannot state.
_POSITIVE_OK = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
_NEGATIVE_OK = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "5xx"]
_OPERATIONS: list[dict[str, Any]] = [
    {
        # A one-time token cannot be generated: a made-up one is 422 TOKEN_INVALID.
        "include-name": ["POST /api/v1/auth/password/reset"],
        "checks": {"positive_data_acceptance": {"expected-statuses": [*_POSITIVE_OK, "422"]}},
    },
    {
        # The caller's current password cannot be generated: every call is a wrong
        # guess, 422 PASSWORD_INCORRECT (and 429 after five, for that email), so no
        # password of the run ever changes and its tokens stay valid.
        "include-name": ["POST /api/v1/auth/password"],
        "checks": {"positive_data_acceptance": {"expected-statuses": [*_POSITIVE_OK, "422"]}},
    },
    {
        # Rules across fields and rows that JSON Schema cannot state: moving a user
        # into or out of the student role (ROLE_CHANGE_NOT_ALLOWED); unique subject
        # codes and grades, pass_mark <= max_mark, two decimals, changes that would
        # strand stored marks; mark entries naming students and subjects that exist
        # (STUDENT_NOT_FOUND, SUBJECT_NOT_FOUND) with marks up to the max_mark.
        "include-name": [
            "PATCH /api/v1/users/{user_id}",
            "POST /api/v1/exams",
            "PATCH /api/v1/exams/{exam_id}",
            "PUT /api/v1/exams/{exam_id}/marks",
        ],
        "checks": {"positive_data_acceptance": {"expected-statuses": [*_POSITIVE_OK, "422"]}},
    },
    {
        # An upload's body is a file the schema can only call binary: an empty one is
        # 422 (nothing to import), a multipart file whose type and name say neither
        # CSV nor XLSX (file.png) is 415, as API.md says, and a multipart body the
        # streaming parser cannot read (the generator's part names) is 400.
        "include-name": ["POST /api/v1/exams/{exam_id}/imports", "POST /api/v1/users/imports"],
        "checks": {
            "positive_data_acceptance": {"expected-statuses": [*_POSITIVE_OK, "400", "415", "422"]}
        },
    },
    {
        # A cursor is valid only as the server handed it out (signed, bound to its
        # list): a made-up one, schema-valid or not, is 400 BAD_REQUEST.
        "include-name": [
            "GET /api/v1/users",
            "GET /api/v1/exams",
            "GET /api/v1/me/results",
            "GET /api/v1/exams/{exam_id}/marks",
            "GET /api/v1/exams/{exam_id}/marks/audit",
            "GET /api/v1/exams/{exam_id}/results",
            "GET /api/v1/jobs",
            "GET /api/v1/notifications",
        ],
        "checks": {"positive_data_acceptance": {"expected-statuses": [*_POSITIVE_OK, "400"]}},
    },
    {
        # A live stream ends only when the caller's token expires: every call would
        # run into the request timeout. tests/e2e/test_notifications.py reads it as
        # a browser does; a malformed Last-Event-ID (400) is tested in the notifier.
        "include-name": ["GET /api/v1/notifications/stream"],
        "enabled": False,
    },
]
# Not scoped away on purpose: logout (the run holds no refresh token, so it can
# only name unknown ones: 204, nothing revoked) and PATCH /users/{id} (an admin
# cannot deactivate or demote themself: 409; the student's run is over by then).


# Addresses at special-use domains (.test, .invalid, ...) are refused or accepted by
# auth's own email rules, tested with them (services/auth/tests); here addresses
# are drawn at ordinary domains, so "format: email" alone decides what is valid.
_LOCAL_PART = string.ascii_lowercase + string.digits + "!#$%&'*+-/=?^_`{|}~"
schemathesis.openapi.format(
    "email",
    st.builds(
        "{}@{}.{}".format,
        st.text(alphabet=_LOCAL_PART, min_size=1, max_size=20),
        st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True),
        st.sampled_from(["com", "org", "net", "edu", "io"]),
    ),
)


def _config(token: str, seeded: dict[str, str]) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            # Real processes answer in milliseconds, not microseconds: Hypothesis's
            # speed checks would fail the run for the wrong reason.
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            "headers": {"Authorization": f"Bearer {token}"},
            "request-timeout": 30,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                # NUL in any string is refused by design (400/422 FORBIDDEN_CHARACTER,
                # tests/e2e/test_forbidden_input.py); schema-valid input would else
                # count as refused valid data.
                "allow-x00": False,
            },
            # Half of the ids name things that exist, so success bodies are checked too.
            "dictionaries": {
                "exam_ids": {"values": [seeded["published_exam"], seeded["draft_exam"]]},
                "user_ids": {"values": [seeded["student_id"]]},
                "student_numbers": {"values": [seeded["student_number"]]},
            },
            "parameters": {
                "path.exam_id": {"dictionary": "exam_ids", "probability": 0.5},
                "path.user_id": {"dictionary": "user_ids", "probability": 0.5},
                "path.student_number": {"dictionary": "student_numbers", "probability": 0.5},
            },
            # The URL and head limits refuse what is too long before anything is
            # parsed: 414 and 431 are refusals of invalid data too.
            "checks": {
                "negative_data_rejection": {
                    "expected-statuses": [*_NEGATIVE_OK, "414", "431"],
                }
            },
            "operations": _OPERATIONS,
        }
    )


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    data: dict[str, Any] = response.json()
    return data


def _seed(suite: E2E, admin: str) -> dict[str, str]:
    """A student with a published result, and a draft exam, through the API."""
    number = f"S-{uuid.uuid4().hex[:8]}"
    exam = {
        "name": "Fuzzing",
        "subjects": [{"code": "MATH", "name": "Maths", "max_mark": 100, "pass_mark": 40}],
        "grading_scale": [
            {"grade": "A", "min_percent": 70, "points": 4},
            {"grade": "F", "min_percent": 0, "points": 0},
        ],
        "pass_percent": 40,
    }
    with suite.client(headers=bearer(admin)) as client:
        student = _ok(
            client.post(
                "/api/v1/users",
                json={
                    "email": f"fuzz-{number.lower()}@example.edu",
                    "full_name": "Fuzz Student",
                    "role": "student",
                    "student_number": number,
                    "password": STUDENT_PASSWORD,
                },
            ),
            201,
        )
        published = _ok(client.post("/api/v1/exams", json={**exam, "code": f"P-{number}"}), 201)
        draft = _ok(client.post("/api/v1/exams", json={**exam, "code": f"D-{number}"}), 201)
        entry = {"student_number": number, "subject_code": "MATH", "status": "present", "mark": 75}
        marks = {"marks": [entry]}
        for exam_id in (published["id"], draft["id"]):
            _ok(client.put(f"/api/v1/exams/{exam_id}/marks", json=marks))
            _ok(client.post(f"/api/v1/exams/{exam_id}/results/generate"))
        _ok(client.post(f"/api/v1/exams/{published['id']}/publish"))
        tokens = _ok(
            client.post(
                "/api/v1/auth/login",
                json={"email": student["email"], "password": STUDENT_PASSWORD},
            )
        )
    return {
        "student_id": student["id"],
        "student_number": number,
        "student_token": tokens["access_token"],
        "published_exam": published["id"],
        "draft_exam": draft["id"],
    }


@pytest.fixture(scope="module")
def fuzz_suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[E2E, dict[str, str]]]:
    with running_suite(tmp_path_factory.mktemp("fuzz")) as suite:
        with suite.client() as client:
            admin = _ok(
                client.post(
                    "/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
                )
            )["access_token"]
        yield suite, {**_seed(suite, admin), "admin_token": admin}


@dataclass
class Run:
    """What one schemathesis run did and found."""

    requests: int = 0
    scenarios: int = 0
    phases: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


def _run(schema: BaseSchema) -> Run:
    """Every phase of schemathesis (examples, coverage, fuzzing, stateful) over ``schema``."""
    run = Run()
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            run.scenarios += 1
            run.requests += len(event.recorder.interactions)
            phase = event.phase.value
            run.phases[phase] = run.phases.get(phase, 0) + len(event.recorder.interactions)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        run.failures.append(
                            f"{event.label} [{check.name}] {failure.title}: {failure.message}\n"
                            f"    {check.failure_info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError):
            run.failures.append(f"{event.label}: error {event.value!r}")
        elif isinstance(event, events.FatalError):
            raise event.exception
    return run


# Student first: the admin's run may deactivate the student (see the module doc).
@pytest.mark.parametrize("persona", ["student", "admin"])
def test_every_answer_is_one_the_document_describes(
    fuzz_suite: tuple[E2E, dict[str, str]], persona: str
) -> None:
    suite, seeded = fuzz_suite
    schema = schemathesis.openapi.from_url(
        suite.gateway + "/openapi.json", config=_config(seeded[f"{persona}_token"], seeded)
    )
    started = time.monotonic()
    run = _run(schema)
    print(
        f"\nschemathesis as {persona}: {run.requests} requests in {run.scenarios} scenarios, "
        f"{time.monotonic() - started:.0f} s {run.phases}"
    )
    assert run.requests > 0
    assert not run.failures, "\n".join(dict.fromkeys(run.failures))
