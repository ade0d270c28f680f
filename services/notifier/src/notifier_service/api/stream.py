"""``GET /api/v1/notifications/stream``: the caller's live stream (API.md "Notifications").

Opens with the client's reconnect delay, then either the notifications after
``Last-Event-ID`` (a resume: oldest first, in pages) or nothing, then the
current ``unread_count``; then every new notification of the caller as it is
created on any replica (:mod:`notifier_service.streams.hub`), their unread
count when it changes, and a comment at least every ``STREAM_HEARTBEAT_SECONDS``.
The stream ends when the caller's access token expires (the client reconnects
with a fresh one and its Last-Event-ID), when the replica stops, or when the
client falls too far behind. A user holds at most ``MAX_STREAMS_PER_USER``
streams at once across replicas (429 ``RATE_LIMITED`` beyond).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import StreamingResponse
from service_kit.db import Database
from service_kit.errors import BadRequest, ErrorCode, RateLimited
from service_kit.openapi import raises
from service_kit.security import CurrentUser, Principal

from notifier_service.api.deps import DB, Hub, Settings, Slots
from notifier_service.api.models import NotificationOut
from notifier_service.store import notifications as store
from notifier_service.store.notifications import NotificationRow
from notifier_service.streams import sse
from notifier_service.streams.hub import (
    STREAM_EVENTS,
    CatchUp,
    Closed,
    NotificationEvent,
    StreamHub,
    Subscription,
    UnreadCountEvent,
)
from notifier_service.streams.slots import StreamSlots

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])

RESUME_PAGE = 500
"""Notifications read per query while a stream catches up."""


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "Events `notification` (id: its position) and `unread_count`.",
        }
    },
)
@raises(ErrorCode.RATE_LIMITED, ErrorCode.BAD_REQUEST)
async def get_stream(
    caller: CurrentUser,
    db: DB,
    hub: Hub,
    slots: Slots,
    settings: Settings,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=32,
            description="The id of the last event received: the stream resumes after it.",
        ),
    ] = None,
) -> StreamingResponse:
    try:
        resume_after = sse.parse_last_event_id(last_event_id)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    stream_id = uuid.uuid4().hex
    if not await slots.take(caller.user_id, stream_id):
        raise RateLimited(
            int(slots.ttl_seconds),
            message=f"At most {settings.max_streams_per_user} live streams at once; "
            "close one or try again later.",
        )
    subscription = hub.subscribe(caller.user_id)
    body = _events(
        _Stream(db, hub, slots, subscription, caller, stream_id, settings.stream_heartbeat_seconds),
        resume_after,
    )
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class _Stream:
    def __init__(
        self,
        db: Database,
        hub: StreamHub,
        slots: StreamSlots,
        subscription: Subscription,
        caller: Principal,
        stream_id: str,
        heartbeat_seconds: float,
    ) -> None:
        self.db = db
        self.hub = hub
        self.slots = slots
        self.subscription = subscription
        self.caller = caller
        self.stream_id = stream_id
        self.heartbeat = heartbeat_seconds
        self.sent = sse.RecentIds()

    async def after(self, seq: int) -> AsyncIterator[NotificationRow]:
        """The caller's notifications after ``seq``, oldest first, page by page."""
        while True:
            async with self.db.read_session(fresh=True) as session:
                rows = await store.after_seq(session, self.caller.user_id, seq, limit=RESUME_PAGE)
            for row in rows:
                yield row
            if len(rows) < RESUME_PAGE:
                return
            seq = rows[-1].seq

    async def latest_seq(self) -> int:
        async with self.db.read_session(fresh=True) as session:
            return await store.latest_seq(session, self.caller.user_id)

    async def unread_count(self) -> int:
        async with self.db.read_session(fresh=True) as session:
            return await store.unread_count(session, self.caller.user_id)

    def notification(self, row: NotificationRow) -> bytes | None:
        if not self.sent.add(row.seq):
            return None
        STREAM_EVENTS.labels("notification").inc()
        data = NotificationOut.of(row).model_dump(mode="json")
        return sse.event("notification", data, event_id=row.seq)

    @staticmethod
    def count(count: int) -> bytes:
        STREAM_EVENTS.labels("unread_count").inc()
        return sse.event("unread_count", {"unread_count": count})


async def _events(stream: _Stream, resume_after: int | None) -> AsyncIterator[bytes]:
    user_id = stream.caller.user_id
    try:
        yield sse.retry()
        if resume_after is not None:
            stream.sent.highest = resume_after
            async for row in stream.after(resume_after):
                if (chunk := stream.notification(row)) is not None:
                    yield chunk
        else:
            # A catch-up (after the hub's LISTEN reconnected) starts from here, not
            # from the user's first notification.
            stream.sent.highest = await stream.latest_seq()
        yield stream.count(await stream.unread_count())
        last_write = last_renewal = time.monotonic()
        while True:
            now = time.monotonic()
            until_expiry = stream.caller.expires_at - time.time()
            if until_expiry <= 0:
                yield sse.comment("the access token expired; reconnect with a fresh one")
                return
            if now - last_renewal >= stream.heartbeat:
                await stream.slots.take(user_id, stream.stream_id)
                last_renewal = now
            wait = min(stream.heartbeat - (now - last_write), until_expiry)
            try:
                item = await asyncio.wait_for(stream.subscription.queue.get(), timeout=max(wait, 0))
            except TimeoutError:
                yield sse.comment("keep-alive")
                last_write = time.monotonic()
                continue
            match item:
                case NotificationEvent(row):
                    if (chunk := stream.notification(row)) is not None:
                        yield chunk
                case UnreadCountEvent(count):
                    yield stream.count(count)
                case CatchUp():
                    async for row in stream.after(stream.sent.highest):
                        if (chunk := stream.notification(row)) is not None:
                            yield chunk
                    yield stream.count(await stream.unread_count())
                case Closed(reason):
                    yield sse.comment(reason)
                    return
            last_write = time.monotonic()
    finally:
        stream.hub.unsubscribe(stream.subscription)
        await stream.slots.release(user_id, stream.stream_id)
