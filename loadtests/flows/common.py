"""What every flow shares: the seeded credentials, signing in and keeping a token fresh,
checked requests, and polling a job."""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser
from locust.contrib.fasthttp import ResponseContextManager

from loadtests.flows.checks import JOB, TOKENS, problems

API = "/api/v1"
DEFAULT_CREDENTIALS = Path(__file__).resolve().parent.parent / ".seed" / "credentials.json"
FINISHED = {"succeeded", "completed_with_errors", "failed", "cancelled"}
RATE_LIMIT_HINT = (
    "sign-in limit per client address hit: every simulated user shares one address, so "
    "start the suite with a high LOGIN_MAX_ATTEMPTS_PER_IP (see README, Load tests)"
)


@dataclass
class Settings:
    """Set once from the command line (``locustfile.py``) before any user starts."""

    credentials: dict[str, Any] = field(default_factory=dict)
    stream_seconds: float = 5.0
    think_scale: float = 1.0
    job_timeout: float = 60.0
    _counters: dict[str, Iterator[int]] = field(default_factory=dict)

    def load(self, path: Path) -> None:
        if not path.is_file():
            raise SystemExit(
                f"no credentials at {path}: seed first (uv run python -m loadtests.seed)"
            )
        self.credentials = json.loads(path.read_text())

    def next_index(self, role: str) -> int:
        """Hands each simulated user of a role the next account (round robin)."""
        counter = self._counters.setdefault(role, itertools.count())
        return next(counter)

    def account(self, role: str) -> dict[str, Any]:
        if role == "admin":
            return dict(self.credentials["admin"])
        accounts = self.credentials[f"{role}s"]
        return dict(accounts[self.next_index(role) % len(accounts)])


SETTINGS = Settings()


def think(low: float, high: float) -> Any:
    """locust's ``between`` scaled by ``--think-scale`` (0 for a flat-out run)."""

    def wait_time(_user: Any) -> float:
        return random.uniform(low, high) * SETTINGS.think_scale

    return wait_time


def body_of(response: ResponseContextManager, status: int, shape: Any = None) -> Any:
    """The JSON body when the status and the shape are right; else marks the request
    failed (with what was wrong) and returns None."""
    if response.status_code != status:
        response.failure(f"{response.status_code} instead of {status}: {_excerpt(response)}")
        return None
    if shape is None:
        return True
    try:
        body = response.json()
    except ValueError:
        response.failure(f"not JSON: {_excerpt(response)}")
        return None
    found = problems(body, shape)
    if found:
        response.failure("wrong body: " + "; ".join(found[:5]))
        return None
    return body


def fail_unless(response: ResponseContextManager, ok: bool, message: str) -> bool:
    if not ok:
        response.failure(message)
    return ok


def _excerpt(response: ResponseContextManager) -> str:
    """What the answer says, without its request id (the report groups equal messages)."""
    text = response.text or ""
    try:
        error = json.loads(text)["error"]
        said = f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return " ".join(text.split())[:200]
    if error["code"] == "AUTH_RATE_LIMITED":
        return RATE_LIMIT_HINT
    retry_after = response.headers.get("Retry-After") if response.headers else None
    return said + (f" (Retry-After {retry_after})" if retry_after else "")


class SignedIn(FastHttpUser):
    """A user with an account of ``role``: signs in on start and keeps the access token
    fresh (a refresh before it expires), as a client does."""

    abstract = True
    role = "student"

    def on_start(self) -> None:
        self.account = SETTINGS.account(self.role)
        self.tokens: dict[str, Any] = {}
        self.token_at = 0.0
        while not self.login():
            gevent.sleep(1.0)

    def login(self) -> bool:
        with self.client.post(
            f"{API}/auth/login",
            json={"email": self.account["email"], "password": self.account["password"]},
            name="POST /auth/login",
            catch_response=True,
        ) as response:
            tokens = body_of(response, 200, TOKENS)
            if tokens is None:
                return False
            self.tokens = tokens
            self.token_at = time.monotonic()
            return True

    def refresh(self) -> bool:
        with self.client.post(
            f"{API}/auth/refresh",
            json={"refresh_token": self.tokens.get("refresh_token", "")},
            name="POST /auth/refresh",
            catch_response=True,
        ) as response:
            tokens = body_of(response, 200, TOKENS)
            if tokens is None:
                return False
            if not fail_unless(
                response,
                tokens["refresh_token"] != self.tokens.get("refresh_token"),
                "the refresh token was not rotated",
            ):
                return False
            self.tokens = tokens
            self.token_at = time.monotonic()
            return True

    def pause(self) -> None:
        """A think time between the steps of one task."""
        gevent.sleep(self.wait_time())

    def token_left(self) -> float:
        """Seconds until the access token expires."""
        return float(self.tokens.get("expires_in", 0)) - (time.monotonic() - self.token_at)

    @property
    def auth(self) -> dict[str, str]:
        if self.token_left() < 60 and not self.refresh():
            self.login()
        return {"Authorization": f"Bearer {self.tokens.get('access_token', '')}"}

    def wait_for_job(
        self, job_id: str, verdict: Callable[[dict[str, Any]], str | None]
    ) -> dict[str, Any] | None:
        """Polls ``GET /jobs/{id}`` until the job has finished; None (a failure) when a poll
        fails, the job takes longer than ``--job-timeout``, or ``verdict`` finds something
        wrong with the finished job (the last poll is then the failed request)."""
        deadline = time.monotonic() + SETTINGS.job_timeout
        pause = 0.2
        while True:
            with self.client.get(
                f"{API}/jobs/{job_id}",
                headers=self.auth,
                name="GET /jobs/{id}",
                catch_response=True,
            ) as response:
                job = body_of(response, 200, JOB)
                if job is None:
                    return None
                if not fail_unless(response, job["id"] == job_id, "another job's body"):
                    return None
                if job["status"] in FINISHED:
                    wrong = verdict(job)
                    return dict(job) if fail_unless(response, wrong is None, str(wrong)) else None
                if not fail_unless(
                    response,
                    time.monotonic() < deadline,
                    f"job still {job['status']} after {SETTINGS.job_timeout:.0f}s",
                ):
                    return None
            gevent.sleep(pause)
            pause = min(1.0, pause * 1.5)
