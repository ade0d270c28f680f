"""Notifications as a new user meets them, through the gateway (issue 10 "Done when"):
every student of a published exam sees exactly one notification, live, and gets
exactly one email and one signed webhook; a corrected student gets one more;
importers are told when their job is done; invited users and users who forgot
their password get a working link; an SMTP outage loses and duplicates nothing."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from bulk_support import (
    PASSWORD,
    admin_client,
    create_exam,
    create_user,
    login,
    ok,
    upload,
    wait_for_job,
)
from conftest import E2E, bearer

pytestmark = pytest.mark.e2e

FRONTEND = "https://app.example.edu"


def eventually(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not in time: {what}"
        time.sleep(0.1)


def notifications(e2e: E2E, token: str, **params: str) -> dict[str, Any]:
    with e2e.client(headers=bearer(token)) as client:
        return dict(ok(client.get("/api/v1/notifications", params=params)))


def publish_exam(admin: httpx.Client, students: list[dict[str, Any]]) -> dict[str, Any]:
    exam = create_exam(admin, [("MATH", 100)], name=f"Physics <b>{uuid.uuid4().hex[:4]}</b>")
    marks = [
        {
            "student_number": s["student_number"],
            "subject_code": "MATH",
            "status": "present",
            "mark": 50 + i,
        }
        for i, s in enumerate(students)
    ]
    ok(admin.put(f"/api/v1/exams/{exam['id']}/marks", json={"marks": marks}))
    ok(admin.post(f"/api/v1/exams/{exam['id']}/results/generate"))
    ok(admin.post(f"/api/v1/exams/{exam['id']}/publish"))
    return exam


def test_publication_notifies_each_student_once_in_app_by_email_and_webhook(
    e2e: E2E, admin_tokens: dict[str, str]
) -> None:
    with admin_client(e2e, admin_tokens) as admin:
        students = [create_user(admin, "student") for _ in range(3)]
        exam = publish_exam(admin, students)
        tokens = {s["id"]: login(e2e, s["email"]) for s in students}

        for student in students:
            inbox = eventually(
                lambda s=student: notifications(e2e, tokens[s["id"]])["items"],
                what="the results_published notification",
            )
            [note] = inbox
            assert note["kind"] == "results_published"
            assert note["data"]["exam_id"] == exam["id"]
            assert note["data"]["link"] == f"/exams/{exam['id']}/results"
            assert exam["name"] in note["title"]  # text, never markup
            [mail] = eventually(lambda s=student: e2e.mail.to(s["email"]), what="the email")
            assert exam["name"] in mail.subject
            assert f"{FRONTEND}/exams/{exam['id']}/results" in mail.text()
            assert "&lt;b&gt;" in mail.html() and "<b>" not in mail.html()
            eventually(lambda s=student: e2e.webhooks.for_user(s["id"]), what="the webhook")

        # A correction after publication that moves nobody else's rank: one more
        # notification, for that student only.
        corrected = students[-1]
        entry = {
            "student_number": corrected["student_number"],
            "subject_code": "MATH",
            "status": "present",
            "mark": 60,
        }
        ok(
            admin.put(
                f"/api/v1/exams/{exam['id']}/marks", json={"marks": [entry], "reason": "re-marked"}
            )
        )
        eventually(
            lambda: len(notifications(e2e, tokens[corrected["id"]])["items"]) == 2,
            what="the results_updated notification",
        )
        kinds = [n["kind"] for n in notifications(e2e, tokens[corrected["id"]])["items"]]
        assert kinds == ["results_updated", "results_published"]
        eventually(lambda: len(e2e.mail.to(corrected["email"])) == 2, what="the second email")

    time.sleep(2)  # anything doubled would have arrived by now
    for student in students:
        expected = 2 if student is corrected else 1
        assert len(notifications(e2e, tokens[student["id"]])["items"]) == expected
        assert len(e2e.mail.to(student["email"])) == expected
        hooks = e2e.webhooks.for_user(student["id"])
        assert len(hooks) == expected and all(h.signature_valid for h in hooks)
        assert notifications(e2e, tokens[student["id"]])["unread_count"] == expected


def test_a_browser_style_stream_through_the_gateway_sees_a_new_notification(
    e2e: E2E, admin_tokens: dict[str, str]
) -> None:
    with admin_client(e2e, admin_tokens) as admin:
        [student] = [create_user(admin, "student")]
        token = login(e2e, student["email"])
        events: list[tuple[str, dict[str, Any], float]] = []
        opened = threading.Event()

        def read_stream() -> None:
            headers = {**bearer(token), "Accept": "text/event-stream", "Origin": FRONTEND}
            with (
                httpx.Client(base_url=e2e.gateway, timeout=httpx.Timeout(5, read=60)) as client,
                client.stream("GET", "/api/v1/notifications/stream", headers=headers) as response,
            ):
                assert response.status_code == 200
                assert response.headers["content-type"].startswith("text/event-stream")
                name = None
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        name = line.removeprefix("event: ")
                    elif line.startswith("data: ") and name is not None:
                        events.append(
                            (name, orjson.loads(line.removeprefix("data: ")), time.monotonic())
                        )
                        opened.set()
                        if name == "notification":
                            return

        reader = threading.Thread(target=read_stream, daemon=True)
        reader.start()
        assert opened.wait(15), "the stream sent nothing"
        assert events[0][0] == "unread_count"
        published_at = time.monotonic()
        publish_exam(admin, [student])
        reader.join(30)
        assert not reader.is_alive(), "no notification came down the stream"
        name, body, arrived = events[-1]
        assert name == "notification" and body["kind"] == "results_published"
        print(f"\nstream: notification {arrived - published_at:.3f} s after the publish call began")


def test_forgot_password_end_to_end(e2e: E2E, admin_tokens: dict[str, str]) -> None:
    with admin_client(e2e, admin_tokens) as admin:
        user = create_user(admin, "examiner")
    with e2e.client() as client:
        old = ok(
            client.post("/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD})
        )
        unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.edu"
        for address in (user["email"], unknown):
            response = client.post("/api/v1/auth/password/forgot", json={"email": address})
            assert response.status_code == 202
        [mail] = eventually(lambda: e2e.mail.to(user["email"]), what="the reset email")
        link = mail.link("/reset-password")
        assert link.startswith(f"{FRONTEND}/reset-password?token=")
        [token] = parse_qs(urlsplit(link).query)["token"]

        new_password = "a-brand-new-password-1"
        reset = client.post(
            "/api/v1/auth/password/reset", json={"token": token, "new_password": new_password}
        )
        assert reset.status_code == 204, reset.text
        again = client.post(
            "/api/v1/auth/password/reset", json={"token": token, "new_password": "another-one-2345"}
        )
        assert again.status_code == 422
        assert (
            client.post(
                "/api/v1/auth/login", json={"email": user["email"], "password": new_password}
            ).status_code
            == 200
        )
        assert (
            client.post(
                "/api/v1/auth/login", json={"email": user["email"], "password": PASSWORD}
            ).status_code
            == 401
        )
        refreshed = client.post(
            "/api/v1/auth/refresh", json={"refresh_token": old["refresh_token"]}
        )
        assert refreshed.status_code == 401
        # In-app, the reset is announced without its token.
        token_now = login(e2e, user["email"], new_password)
        [note] = notifications(e2e, token_now)["items"]
        assert note["kind"] == "password_reset" and token not in orjson.dumps(note).decode()
    assert e2e.mail.to(unknown) == []
    # The token was in the email only: no service (nor bulk's workers) logged it.
    assert e2e.suite.log_dir is not None
    for log in sorted(e2e.suite.log_dir.glob("*.log")):
        assert token not in log.read_text(errors="replace"), log.name


def test_an_invited_user_accepts_by_the_emailed_link(
    e2e: E2E, admin_tokens: dict[str, str]
) -> None:
    email = f"invited-{uuid.uuid4().hex[:8]}@example.edu"
    with admin_client(e2e, admin_tokens) as admin:
        ok(
            admin.post(
                "/api/v1/users",
                json={"email": email, "full_name": "Invited Person", "role": "examiner"},
            ),
            201,
        )
    [mail] = eventually(lambda: e2e.mail.to(email), what="the invitation email")
    assert "Invited Person" in mail.text()
    [token] = parse_qs(urlsplit(mail.link("/accept-invitation")).query)["token"]
    with e2e.client() as client:
        password = "my-first-password-1"
        assert (
            client.post(
                "/api/v1/auth/password/reset", json={"token": token, "new_password": password}
            ).status_code
            == 204
        )
        assert (
            client.post(
                "/api/v1/auth/login", json={"email": email, "password": password}
            ).status_code
            == 200
        )


def test_an_importer_is_told_when_the_job_is_done(e2e: E2E, admin_tokens: dict[str, str]) -> None:
    with admin_client(e2e, admin_tokens) as admin:
        examiner = create_user(admin, "examiner")
        student = create_user(admin, "student")
        exam = create_exam(admin, [("MATH", 100)])
    token = login(e2e, examiner["email"])
    body = f"student_number,subject_code,mark\r\n{student['student_number']},MATH,70\r\n".encode()
    with e2e.client(headers=bearer(token)) as client:
        job = ok(upload(client, f"/api/v1/exams/{exam['id']}/imports", body), 202)
        assert wait_for_job(client, job["id"])["status"] == "succeeded"
    [note] = eventually(lambda: notifications(e2e, token)["items"], what="import_finished")
    assert note["kind"] == "import_finished" and note["data"]["job_id"] == job["id"]
    assert note["data"]["link"] == f"/jobs/{job['id']}"


def test_an_smtp_outage_loses_and_doubles_nothing(e2e: E2E, admin_tokens: dict[str, str]) -> None:
    with admin_client(e2e, admin_tokens) as admin:
        users = [create_user(admin, "examiner") for _ in range(3)]
    e2e.mail.stop()
    try:
        with e2e.client() as client:
            for user in users:
                response = client.post(
                    "/api/v1/auth/password/forgot", json={"email": user["email"]}
                )
                assert response.status_code == 202
        time.sleep(2)  # deliveries fail and wait in the retry tiers
        assert all(e2e.mail.to(u["email"]) == [] for u in users)
    finally:
        e2e.mail.start()
    for user in users:
        eventually(lambda u=user: e2e.mail.to(u["email"]), timeout=60, what="mail after the outage")
    time.sleep(2)
    assert [len(e2e.mail.to(u["email"])) for u in users] == [1, 1, 1]
