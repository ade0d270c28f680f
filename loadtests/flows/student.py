"""A student on results day: their results, one of them in full, their notifications
(marking one read) and the live stream held open for a while."""

from __future__ import annotations

import random
from typing import Any

import gevent
from locust import task

from loadtests.flows.checks import NOTIFICATION, RESULT, page, stream_problems
from loadtests.flows.common import API, SETTINGS, SignedIn, body_of, fail_unless, think

NOTIFICATIONS = {**page(NOTIFICATION), "unread_count": int}


def sse_events(raw: Any, seconds: float) -> tuple[list[dict[str, str]], bool]:
    """The events read from an open ``text/event-stream`` body for ``seconds`` (each a dict
    of its fields; a ``retry:`` block counts as one), and whether the server ended it."""
    events: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    ended = False
    with gevent.Timeout(seconds, False):
        while True:
            line = raw.readline(b"\n")
            if not line:
                ended = True
                break
            text = line.decode("utf-8").rstrip("\r\n")
            if not text:
                if fields:
                    events.append(fields)
                fields = {}
            elif not text.startswith(":"):
                name, _, value = text.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
    # An unfinished body closes its connection instead of going back to the pool.
    raw.release()
    return events, ended


class StudentUser(SignedIn):
    """Visits again and again: results, one in full, notifications, one marked read, then
    the live stream held for ``--stream-seconds``; a think time between steps."""

    weight = 20
    wait_time = think(2.0, 6.0)

    def on_start(self) -> None:
        super().on_start()
        self.exam_ids: list[str] = []
        self.unread: list[str] = []

    @task
    def visit(self) -> None:
        for step in (self.my_results, self.one_result, self.notifications, self.mark_read):
            step()
            self.pause()
        self.live_stream()

    def my_results(self) -> None:
        number = self.account["student_number"]
        with self.client.get(
            f"{API}/me/results", headers=self.auth, name="GET /me/results", catch_response=True
        ) as response:
            body = body_of(response, 200, page(RESULT))
            if body is None:
                return
            items = body["items"]
            others = [r["student_number"] for r in items if r["student_number"] != number]
            if not fail_unless(response, not others, f"results of {others[:3]}, not {number}"):
                return
            fail_unless(
                response,
                len(items) >= self.account["published_exams"],
                f"{len(items)} results, {self.account['published_exams']} seeded",
            )
            self.exam_ids = [r["exam_id"] for r in items]

    def one_result(self) -> None:
        if not self.exam_ids:
            self.my_results()
            return
        exam_id = random.choice(self.exam_ids)
        number = self.account["student_number"]
        with self.client.get(
            f"{API}/exams/{exam_id}/results/{number}",
            headers=self.auth,
            name="GET /exams/{id}/results/{student_number}",
            catch_response=True,
        ) as response:
            result = body_of(response, 200, RESULT)
            if result is not None:
                fail_unless(
                    response,
                    (result["exam_id"], result["student_number"]) == (exam_id, number),
                    f"asked {exam_id}/{number}, got {result['exam_id']}/{result['student_number']}",
                )

    def notifications(self) -> None:
        with self.client.get(
            f"{API}/notifications?limit=20",
            headers=self.auth,
            name="GET /notifications",
            catch_response=True,
        ) as response:
            body = body_of(response, 200, NOTIFICATIONS)
            if body is None:
                return
            unread = [n["id"] for n in body["items"] if n["read_at"] is None]
            fail_unless(
                response,
                body["unread_count"] >= len(unread),
                f"unread_count {body['unread_count']} below the {len(unread)} unread listed",
            )
            self.unread = unread

    def mark_read(self) -> None:
        if not self.unread:
            return
        notification_id = self.unread.pop()
        with self.client.post(
            f"{API}/notifications/{notification_id}/read",
            headers=self.auth,
            name="POST /notifications/{id}/read",
            catch_response=True,
        ) as response:
            body_of(response, 204)

    def live_stream(self) -> None:
        headers = {**self.auth, "Accept": "text/event-stream"}
        hold = min(SETTINGS.stream_seconds, self.token_left() - 1)
        with self.client.get(
            f"{API}/notifications/stream",
            headers=headers,
            name="GET /notifications/stream",
            stream=True,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                body_of(response, 200)
                return
            content_type = response.headers.get("Content-Type", "")
            if not fail_unless(
                response,
                content_type.startswith("text/event-stream"),
                f"stream answered as {content_type!r}",
            ):
                return
            events, ended = sse_events(response._response, hold)
            found = stream_problems(events)
            if ended and self.token_left() > 2:
                found.append(f"the stream ended after {len(events)} events, token still valid")
            if found:
                response.failure("wrong stream: " + "; ".join(found[:5]))
