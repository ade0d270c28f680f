"""The stream hub of one replica: LISTENs for signals and feeds the streams it holds.

Every replica keeps one dedicated Postgres connection that LISTENs on
:data:`~notifier_service.streams.signals.CHANNEL`. A signal is queued and
handled by one dispatcher task (never in asyncpg's callback): for new
notifications it asks the database only for the rows of users whose streams
this replica holds, and hands each stream its rows and its new unread count.

A lost LISTEN connection is reconnected with growing pauses; signals sent
while it was down are lost to it, so after a reconnect every open stream is
told to catch up from the database (``Subscription.catch_up``), and no
notification is missed. A stream that falls :attr:`queue_size` events behind
is closed (its client resumes with ``Last-Event-ID``) rather than let one slow
client hold the replica's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge
from service_kit.db import Database

from notifier_service.store import notifications as store
from notifier_service.store.notifications import NotificationRow
from notifier_service.streams.signals import (
    CHANNEL,
    NewNotifications,
    UnreadChanged,
    parse,
)

log = logging.getLogger(__name__)

OPEN_STREAMS = Gauge("notifier_streams_open", "Live notification streams open on this process.")
STREAM_EVENTS = Counter(
    "notifier_stream_events_total", "Events sent down live streams, by event.", ["event"]
)
for _event in ("notification", "unread_count"):
    STREAM_EVENTS.labels(_event)  # exported at 0 before the first stream
LISTENER_RECONNECTS = Counter(
    "notifier_stream_listener_reconnects_total",
    "Times the stream hub's LISTEN connection was re-established.",
)


@dataclass(frozen=True, slots=True)
class NotificationEvent:
    row: NotificationRow


@dataclass(frozen=True, slots=True)
class UnreadCountEvent:
    count: int


@dataclass(frozen=True, slots=True)
class CatchUp:
    """Signals may have been missed: read what came after the last event sent."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The stream must end: the replica stops, or the client fell too far behind."""

    reason: str


StreamItem = NotificationEvent | UnreadCountEvent | CatchUp | Closed


@dataclass(eq=False)
class Subscription:
    """One open stream's mailbox."""

    user_id: uuid.UUID
    queue: asyncio.Queue[StreamItem]
    _closed: bool = field(default=False)

    def offer(self, item: StreamItem) -> None:
        if self._closed:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.close("the stream fell behind")

    def close(self, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        # Room for the Closed item is made by dropping what is queued: the
        # client resumes from its Last-Event-ID anyway.
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(Closed(reason))


def asyncpg_dsn(database_url: str) -> str:
    """The SQLAlchemy URL as asyncpg's own connect() takes it."""
    scheme, sep, rest = database_url.partition("://")
    if not sep:
        raise ValueError("DATABASE_URL has no scheme")
    return f"postgresql://{rest}" if scheme.startswith("postgresql") else database_url


class StreamHub:
    """Open streams by user, and the LISTEN connection that feeds them."""

    def __init__(
        self,
        db: Database,
        dsn: str,
        *,
        queue_size: int,
        reconnect_max_seconds: float = 10.0,
        connect: Callable[[str], Any] = asyncpg.connect,
    ) -> None:
        self._db = db
        self._dsn = dsn
        self._queue_size = queue_size
        self._reconnect_max = reconnect_max_seconds
        self._connect = connect
        self._streams: dict[uuid.UUID, set[Subscription]] = defaultdict(set)
        self._signals: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()

    # -- lifecycle (the kit's host calls start and stop) --------------------------------

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="stream-hub-listen"),
            asyncio.create_task(self._dispatch(), name="stream-hub-dispatch"),
        ]
        # Streams opened before the first LISTEN would miss signals: wait a moment for
        # it, but never fail start-up on it (the reconnect loop keeps trying).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), timeout=5)

    def end_streams(self) -> None:
        """Ends every open stream now (SIGTERM): their clients reconnect to another
        replica with Last-Event-ID instead of holding this one until it is cut."""
        for subscriptions in list(self._streams.values()):
            for subscription in list(subscriptions):
                subscription.close("the server is shutting down")

    async def stop(self) -> None:
        self.end_streams()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    # -- streams ---------------------------------------------------------------------

    def subscribe(self, user_id: uuid.UUID) -> Subscription:
        subscription = Subscription(user_id, asyncio.Queue(maxsize=self._queue_size))
        self._streams[user_id].add(subscription)
        OPEN_STREAMS.inc()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        held = self._streams.get(subscription.user_id)
        if held is None or subscription not in held:
            return
        held.discard(subscription)
        if not held:
            del self._streams[subscription.user_id]
        OPEN_STREAMS.dec()

    # -- the LISTEN connection -----------------------------------------------------------

    async def _listen(self) -> None:
        pause = 0.2
        first = True
        while True:
            connection = None
            try:
                connection = await self._connect(self._dsn)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                await connection.add_listener(CHANNEL, self._on_notify)
                self._listening.set()
                if not first:
                    LISTENER_RECONNECTS.inc()
                    self._broadcast_catch_up()
                first, pause = False, 0.2
                await lost.wait()
                log.warning("stream hub lost its LISTEN connection; reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("stream hub cannot LISTEN (%s); retrying in %.1fs", exc, pause)
            finally:
                self._listening.clear()
                if connection is not None and not connection.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.shield(connection.close(timeout=2))
            await asyncio.sleep(pause)
            pause = min(pause * 2, self._reconnect_max)

    def _on_notify(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._signals.put_nowait(payload)

    def _broadcast_catch_up(self) -> None:
        for subscriptions in self._streams.values():
            for subscription in subscriptions:
                subscription.offer(CatchUp())

    # -- dispatch --------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            payload = await self._signals.get()
            try:
                await self._handle(payload)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The database blinked: the streams re-read what they may have missed.
                log.exception("stream hub could not dispatch a signal; streams will catch up")
                self._broadcast_catch_up()

    async def _handle(self, payload: str) -> None:
        signal = parse(payload)
        if signal is None:
            log.warning("stream hub ignored a malformed signal")
            return
        if isinstance(signal, NewNotifications):
            users = list(self._streams)
            if not users:
                return
            async with self._db.read_session(fresh=True) as session:
                rows = await store.in_ranges_for_users(session, signal.ranges, users)
                touched = list(dict.fromkeys(r.user_id for r in rows))
                counts = await store.unread_counts(session, touched)
            for row in rows:
                self._send(row.user_id, NotificationEvent(row))
            for user_id, count in counts.items():
                self._send(user_id, UnreadCountEvent(count))
        elif isinstance(signal, UnreadChanged):
            if signal.user_id not in self._streams:
                return
            async with self._db.read_session(fresh=True) as session:
                count = await store.unread_count(session, signal.user_id)
            self._send(signal.user_id, UnreadCountEvent(count))

    def _send(self, user_id: uuid.UUID, item: StreamItem) -> None:
        for subscription in list(self._streams.get(user_id, ())):
            subscription.offer(item)
