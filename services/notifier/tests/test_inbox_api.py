"""The inbox API (API.md "Notifications"): newest first, unread filter and count,
paging, marking read, 404 for another user's notification, email preferences."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient
from notifier_service.domain import causes
from notifier_service.domain.facts import ResultsPublished
from notifier_service.domain.kinds import NotificationKind
from notifier_service.store.users import UserRecord, upsert_users
from notifier_service.usecases.notify import Channels, Intent, notify
from notifier_support import Caller
from service_kit.db import Database

BASE = "/api/v1/notifications"


async def give(db: Database, who: Caller, count: int) -> list[str]:
    """``count`` results_published notifications for ``who``, oldest first; their exam names."""
    names = [f"Exam {i} {uuid.uuid4().hex[:4]}" for i in range(count)]
    async with db.transaction() as session:
        await upsert_users(
            session, [UserRecord(who.user_id, "a@example.edu", "Ann", who.role, True, 1)]
        )
    for name in names:
        exam = uuid.uuid4()
        intent = Intent(
            who.user_id,
            NotificationKind.RESULTS_PUBLISHED,
            causes.results_published(exam),
            ResultsPublished("", exam, "X-1", name),
        )
        async with db.transaction() as session:
            await notify(
                session,
                [intent],
                lookup=_NoLookup(),
                channels=Channels(email=False, webhook=False, batch_size=10),
            )
    return names


class _NoLookup:
    async def find(self, ids: Any) -> list[UserRecord]:
        return []


async def test_newest_first_with_the_unread_count(
    client: AsyncClient, db: Database, student: Caller, examiner: Caller
) -> None:
    names = await give(db, student, 3)
    await give(db, examiner, 1)
    response = await client.get(BASE, headers=student.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["unread_count"] == 3 and body["next_cursor"] is None
    assert [names[2] in i["title"] for i in body["items"]] == [True, False, False]
    item = body["items"][0]
    assert set(item) == {"id", "kind", "title", "body", "data", "created_at", "read_at"}
    assert item["kind"] == "results_published" and item["read_at"] is None


async def test_pages_through_the_inbox(client: AsyncClient, db: Database, student: Caller) -> None:
    await give(db, student, 5)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = (await client.get(BASE, params=params, headers=student.headers)).json()
        seen += [i["id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5


async def test_a_cursor_is_bound_to_its_user_and_filter(
    client: AsyncClient, db: Database, student: Caller, examiner: Caller
) -> None:
    await give(db, student, 3)
    body = (await client.get(BASE, params={"limit": 1}, headers=student.headers)).json()
    for who, params in (
        (examiner, {"cursor": body["next_cursor"]}),
        (student, {"cursor": body["next_cursor"], "unread": "true"}),
        (student, {"cursor": "forged"}),
    ):
        response = await client.get(BASE, params=params, headers=who.headers)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "BAD_REQUEST"


async def test_mark_one_read_then_filter(
    client: AsyncClient, db: Database, student: Caller
) -> None:
    await give(db, student, 2)
    items = (await client.get(BASE, headers=student.headers)).json()["items"]
    target = items[1]["id"]
    for _ in range(2):  # again is fine
        response = await client.post(f"{BASE}/{target}/read", headers=student.headers)
        assert response.status_code == 204
    unread = (await client.get(BASE, params={"unread": "true"}, headers=student.headers)).json()
    assert [i["id"] for i in unread["items"]] == [items[0]["id"]]
    assert unread["unread_count"] == 1
    read = (await client.get(BASE, params={"unread": "false"}, headers=student.headers)).json()
    assert [i["id"] for i in read["items"]] == [target] and read["items"][0]["read_at"]


async def test_another_users_notification_is_not_found(
    client: AsyncClient, db: Database, student: Caller, examiner: Caller
) -> None:
    await give(db, student, 1)
    [item] = (await client.get(BASE, headers=student.headers)).json()["items"]
    for path in (f"{BASE}/{item['id']}/read", f"{BASE}/{uuid.uuid4()}/read"):
        response = await client.post(path, headers=examiner.headers)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"
    assert (await client.get(BASE, headers=student.headers)).json()["unread_count"] == 1
    bad = await client.post(f"{BASE}/not-a-uuid/read", headers=student.headers)
    assert bad.status_code in (404, 422)


async def test_read_all(
    client: AsyncClient, db: Database, student: Caller, examiner: Caller
) -> None:
    await give(db, student, 3)
    await give(db, examiner, 1)
    assert (await client.post(f"{BASE}/read-all", headers=student.headers)).status_code == 204
    assert (await client.get(BASE, headers=student.headers)).json()["unread_count"] == 0
    assert (await client.get(BASE, headers=examiner.headers)).json()["unread_count"] == 1
    assert (await client.post(f"{BASE}/read-all", headers=student.headers)).status_code == 204


async def test_email_preference(client: AsyncClient, student: Caller, examiner: Caller) -> None:
    path = f"{BASE}/preferences"
    assert (await client.get(path, headers=student.headers)).json() == {"email": True}
    response = await client.put(path, json={"email": False}, headers=student.headers)
    assert response.status_code == 200 and response.json() == {"email": False}
    assert (await client.get(path, headers=student.headers)).json() == {"email": False}
    assert (await client.get(path, headers=examiner.headers)).json() == {"email": True}
    for body in ({}, {"email": "maybe"}, {"email": True, "sms": True}):
        bad = await client.put(path, json=body, headers=student.headers)
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "VALIDATION_FAILED"


async def test_every_path_needs_a_token(client: AsyncClient) -> None:
    for method, path in (
        ("GET", BASE),
        ("POST", f"{BASE}/read-all"),
        ("POST", f"{BASE}/{uuid.uuid4()}/read"),
        ("GET", f"{BASE}/preferences"),
        ("GET", f"{BASE}/stream"),
    ):
        response = await client.request(method, path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "AUTH_TOKEN_MISSING"
