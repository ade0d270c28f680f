"""Load test against the gateway.

    uv run locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 \
        --headless -u 50 -r 10 -t 1m

Signs in once per simulated user (login is deliberately expensive: argon2id),
then exercises the authenticated read paths and token refresh. Credentials come
from LOADTEST_EMAIL / LOADTEST_PASSWORD (default: the development admin).
"""

from __future__ import annotations

import os

from locust import FastHttpUser, between, task

EMAIL = os.environ.get("LOADTEST_EMAIL", "admin@example.edu")
PASSWORD = os.environ.get("LOADTEST_PASSWORD", "admin-dev-password")


class PlatformUser(FastHttpUser):
    wait_time = between(0.05, 0.5)

    def on_start(self) -> None:
        self.tokens: dict[str, str] = {}
        self._login()

    def _login(self) -> None:
        with self.client.post(
            "/api/v1/auth/login",
            json={"email": EMAIL, "password": PASSWORD},
            name="POST /auth/login",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"login failed: {response.status_code}")
                return
            self.tokens = response.json()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.get('access_token', '')}"}

    @task(10)
    def me(self) -> None:
        self.client.get("/api/v1/auth/me", headers=self.auth, name="GET /auth/me")

    @task(5)
    def list_exams(self) -> None:
        self.client.get("/api/v1/exams?limit=50", headers=self.auth, name="GET /exams")

    @task(3)
    def list_users(self) -> None:
        self.client.get("/api/v1/users?limit=50", headers=self.auth, name="GET /users")

    @task(1)
    def refresh(self) -> None:
        with self.client.post(
            "/api/v1/auth/refresh",
            json={"refresh_token": self.tokens.get("refresh_token", "")},
            name="POST /auth/refresh",
            catch_response=True,
        ) as response:
            if response.status_code == 200:
                self.tokens = response.json()
            else:
                response.failure(f"refresh failed: {response.status_code}")
                self._login()
