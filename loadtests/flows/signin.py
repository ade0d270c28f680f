"""The sign-in scenario: sign in, read who I am, refresh, read again, sign out; again."""

from __future__ import annotations

from locust import task

from loadtests.flows.checks import USER
from loadtests.flows.common import API, SETTINGS, SignedIn, body_of, fail_unless, think


class SignInUser(SignedIn):
    """Whole sessions back to back, with the students' and examiners' accounts: the
    expensive part of a results day (each sign-in is an Argon2id verify)."""

    weight = 2
    wait_time = think(1.0, 3.0)

    def on_start(self) -> None:
        # No session kept between iterations: each one signs in itself.
        # Four students to one examiner.
        role = "student" if SETTINGS.next_index("signin") % 5 else "examiner"
        self.account = SETTINGS.account(role)
        self.tokens = {}
        self.token_at = 0.0

    def me(self, name: str) -> bool:
        with self.client.get(
            f"{API}/auth/me",
            headers={"Authorization": f"Bearer {self.tokens['access_token']}"},
            name=name,
            catch_response=True,
        ) as response:
            user = body_of(response, 200, USER)
            return user is not None and fail_unless(
                response,
                user["email"].lower() == self.account["email"].lower(),
                f"/me answered for {user['email']}, not {self.account['email']}",
            )

    @task
    def session(self) -> None:
        if not self.login() or not self.me("GET /auth/me"):
            return
        if not self.refresh() or not self.me("GET /auth/me"):
            return
        with self.client.post(
            f"{API}/auth/logout",
            json={"refresh_token": self.tokens["refresh_token"]},
            headers={"Authorization": f"Bearer {self.tokens['access_token']}"},
            name="POST /auth/logout",
            catch_response=True,
        ) as response:
            body_of(response, 204)
