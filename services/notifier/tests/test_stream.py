"""The live stream (API.md "Notifications"), through real HTTP servers: the first
unread count, new notifications within the same second, resume after Last-Event-ID,
heartbeats, the end at the token's expiry, the per-user limit, and a notification
or a read on one replica reaching a stream held by another."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from notifier_service.domain import causes
from notifier_service.domain.facts import ResultsPublished
from notifier_service.domain.kinds import NotificationKind
from notifier_service.main import create_app
from notifier_service.settings import NotifierSettings
from notifier_service.store.users import UserRecord, upsert_users
from notifier_service.usecases.notify import Channels, Intent, notify
from notifier_support import Caller, JwtKeys, SseEvent, execute, served, sse_events, static_verifier
from service_kit.db import Database

STREAM = "/api/v1/notifications/stream"


class _NoLookup:
    async def find(self, ids: Any) -> list[UserRecord]:
        return []


async def give(db: Database, who: Caller, name: str = "Physics") -> None:
    async with db.transaction() as session:
        await upsert_users(
            session, [UserRecord(who.user_id, "a@example.edu", "Ann", who.role, True, 1)]
        )
        exam = uuid.uuid4()
        intent = Intent(
            who.user_id,
            NotificationKind.RESULTS_PUBLISHED,
            causes.results_published(exam),
            ResultsPublished("", exam, "X-1", name),
        )
        await notify(
            session,
            [intent],
            lookup=_NoLookup(),
            channels=Channels(email=False, webhook=False, batch_size=10),
        )


async def start(settings: NotifierSettings, jwt_keys: JwtKeys) -> Any:
    app = create_app(settings)
    app.state.token_verifier = static_verifier(jwt_keys, settings)
    return served(app)


@pytest.fixture
async def server(settings: NotifierSettings, jwt_keys: JwtKeys) -> AsyncIterator[str]:
    async with await start(settings, jwt_keys) as url:
        yield url


class Reader:
    """One open stream; ``next()`` gives the next event (comments skipped unless asked)."""

    def __init__(self, events: Any) -> None:
        self._events = events

    async def next(self, *, comments: bool = False, timeout: float = 10) -> SseEvent:
        while True:
            event: SseEvent = await asyncio.wait_for(anext(self._events), timeout)
            if event.comment is None or comments:
                return event


async def open_stream(
    http: httpx.AsyncClient, url: str, who: Caller, **headers: str
) -> tuple[httpx.Response, Reader]:
    request = http.build_request("GET", url + STREAM, headers={**who.headers, **headers})
    response = await http.send(request, stream=True)
    return response, Reader(sse_events(response))


async def test_a_new_notification_arrives_at_once(
    server: str, db: Database, student: Caller
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response, stream = await open_stream(http, server, student)
        try:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            first = await stream.next()
            assert (first.event, first.json()) == ("unread_count", {"unread_count": 0})
            await give(db, student, "Chemistry")
            event = await stream.next()  # live (the e2e test prints the latency)
            assert event.event == "notification"
            body = event.json()
            assert body["kind"] == "results_published" and "Chemistry" in body["title"]
            assert event.id is not None and int(event.id) > 0
            count = await stream.next()
            assert count.json() == {"unread_count": 1}
        finally:
            await response.aclose()


async def test_resume_after_the_last_event_id(server: str, db: Database, student: Caller) -> None:
    for name in ("One", "Two", "Three"):
        await give(db, student, name)
    async with httpx.AsyncClient(timeout=10) as http:
        response, stream = await open_stream(http, server, student, **{"Last-Event-ID": "0"})
        try:
            seen = [await stream.next() for _ in range(3)]
            assert [
                ("One", "Two", "Three")[i] in e.json()["title"] for i, e in enumerate(seen)
            ] == [True] * 3
            assert (await stream.next()).json() == {"unread_count": 3}
            first_id = seen[0].id
        finally:
            await response.aclose()
        assert first_id is not None
        response, stream = await open_stream(http, server, student, **{"Last-Event-ID": first_id})
        try:
            resumed = [await stream.next() for _ in range(2)]
            assert [e.id for e in resumed] == [seen[1].id, seen[2].id]
        finally:
            await response.aclose()


async def test_heartbeats_keep_an_idle_stream_alive(server: str, student: Caller) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response, stream = await open_stream(http, server, student)
        try:
            assert (await stream.next()).event == "unread_count"
            for _ in range(2):
                beat = await stream.next(comments=True)
                assert beat.comment == "keep-alive"
        finally:
            await response.aclose()


async def test_the_stream_ends_when_the_token_expires(
    server: str, jwt_keys: JwtKeys, settings: NotifierSettings
) -> None:
    user = uuid.uuid4()
    token = jwt_keys.token(settings, user_id=user, role="student", ttl=2)
    who = Caller(user, "student", {"Authorization": f"Bearer {token}"})
    async with httpx.AsyncClient(timeout=10) as http:
        response, _ = await open_stream(http, server, who)
        events: list[SseEvent] = []
        try:
            async for event in sse_events(response):
                events.append(event)
        finally:
            await response.aclose()
    assert events[-1].comment is not None and "expired" in events[-1].comment


async def test_a_user_holds_a_limited_number_of_streams(
    settings: NotifierSettings, jwt_keys: JwtKeys, student: Caller
) -> None:
    limited = settings.model_copy(update={"max_streams_per_user": 2})
    async with await start(limited, jwt_keys) as url, httpx.AsyncClient(timeout=10) as http:
        opened = [await open_stream(http, url, student) for _ in range(2)]
        try:
            for response, stream in opened:
                assert response.status_code == 200
                await stream.next()
            refused = await http.get(url + STREAM, headers=student.headers)
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "RATE_LIMITED"
            assert int(refused.headers["retry-after"]) >= 1
        finally:
            await opened[0][0].aclose()
        # A closed stream frees its slot.
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            response, stream = await open_stream(http, url, student)
            if response.status_code == 200 or asyncio.get_running_loop().time() > deadline:
                break
            await response.aclose()
            await asyncio.sleep(0.1)
        try:
            assert response.status_code == 200
        finally:
            await response.aclose()
            await opened[1][0].aclose()


async def test_a_malformed_last_event_id_is_refused(server: str, student: Caller) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for value in ("abc", "-1", "1.5", "9" * 40):
            response = await http.get(
                server + STREAM, headers={**student.headers, "Last-Event-ID": value}
            )
            assert response.status_code in (400, 422), value
            assert response.json()["error"]["code"] in ("BAD_REQUEST", "VALIDATION_FAILED")


async def test_replicas_share_notifications_and_reads(
    settings: NotifierSettings, jwt_keys: JwtKeys, db: Database, student: Caller
) -> None:
    await give(db, student, "Before")
    async with (
        await start(settings, jwt_keys) as replica_a,
        await start(settings, jwt_keys) as replica_b,
        httpx.AsyncClient(timeout=10) as http,
    ):
        response_a, on_a = await open_stream(http, replica_a, student)
        response_b, on_b = await open_stream(http, replica_b, student)
        try:
            for stream in (on_a, on_b):
                assert (await stream.next()).json() == {"unread_count": 1}
            await give(db, student, "Fresh")
            for stream in (on_a, on_b):
                assert "Fresh" in (await stream.next()).json()["title"]
                assert (await stream.next()).json() == {"unread_count": 2}
            # Read all on replica A: the stream on B hears the new count.
            done = await http.post(
                replica_a + "/api/v1/notifications/read-all", headers=student.headers
            )
            assert done.status_code == 204
            assert (await on_b.next()).json() == {"unread_count": 0}
        finally:
            await response_a.aclose()
            await response_b.aclose()


async def test_a_lost_listen_connection_is_reestablished_without_missing_anything(
    server: str, db: Database, student: Caller
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response, stream = await open_stream(http, server, student)
        try:
            await stream.next()
            await execute(
                db,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%'",
            )
            await give(db, student, "While reconnecting")
            event = await stream.next(timeout=15)
            assert event.event == "notification"
            assert "While reconnecting" in event.json()["title"]
        finally:
            await response.aclose()
