"""The outbox relay: publishes committed outbox rows to RabbitMQ.

Each batch is claimed with ``FOR UPDATE SKIP LOCKED`` in one transaction on
the primary, published with publisher confirms and persistent delivery, and
marked sent in that same transaction only for the rows the broker confirmed.
So several replicas relay side by side without sending a row twice, and a
relay that dies after publishing but before its commit leaves the rows unsent:
they are published again (at-least-once), and consumers drop the duplicate
through their inbox.

Rows go out in ``created_at`` order within a batch; concurrent relays and
retries can interleave batches, so consumers must not depend on a strict
global order (they order by the data's own versions or timestamps).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractConnection, AbstractExchange
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError
from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import Row, func, select, update
from sqlalchemy.exc import SQLAlchemyError

from service_kit.db import Database
from service_kit.jobs import PeriodicJob
from service_kit.messaging.envelope import (
    HEADER_REQUEST_ID,
    EventEnvelope,
    extract_trace_context,
    to_amqp_message,
    trace_headers,
)
from service_kit.messaging.outbox import notify_channel, purge_sent_events
from service_kit.messaging.tables import tables_for
from service_kit.messaging.topology import declare_events_exchange
from service_kit.settings import KitSettings
from service_kit.tracing import tracing_enabled

log = logging.getLogger(__name__)
tracer = trace.get_tracer("service_kit.messaging")

OUTBOX_BACKLOG = Gauge("outbox_backlog", "Outbox rows not yet published.", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "outbox_oldest_unsent_age_seconds", "Age of the oldest unpublished outbox row.", ["service"]
)
OUTBOX_PUBLISHED = Counter(
    "outbox_published_total", "Outbox rows published and confirmed by the broker.", ["service"]
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "outbox_publish_failures_total", "Outbox rows whose publish failed (retried).", ["service"]
)
OUTBOX_RELAY_ERRORS = Counter(
    "outbox_relay_errors_total", "Relay iterations that failed, by cause.", ["service", "cause"]
)
OUTBOX_LAG = Histogram(
    "outbox_delivery_lag_seconds",
    "Time from outbox write to broker confirm.",
    ["service"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

_MAX_ERROR_TEXT = 500
_LISTEN_HEALTHCHECK_SECONDS = 5.0
_GAUGE_REFRESH_SECONDS = 1.0
_BROKER_ERRORS = (AMQPError, ChannelInvalidStateError, OSError, TimeoutError)


def within_budget(claimed: Sequence[Any], budget: int) -> list[Any]:
    """The ids of the first claimed rows whose stored sizes fit ``budget`` (at least one,
    so an event bigger than the budget still goes out, alone)."""
    ids: list[Any] = []
    total = 0
    for row_id, size in claimed:
        total += int(size or 0)
        if ids and total > budget:
            break
        ids.append(row_id)
    return ids


class OutboxRelay:
    """Publishes one schema's outbox; run one per replica (they share the work)."""

    def __init__(
        self,
        db: Database,
        settings: KitSettings,
        *,
        schema: str,
        rabbitmq_url: str | None = None,
        batch_size: int = 100,
        batch_bytes: int = 512 * 1024,
        poll_interval_seconds: float = 1.0,
        min_backoff_seconds: float = 0.2,
        max_backoff_seconds: float = 30.0,
        publish_timeout_seconds: float = 10.0,
        retention: timedelta = timedelta(days=7),
        purge_interval_seconds: float = 600.0,
    ) -> None:
        """``retention`` and ``purge_interval_seconds`` shape :meth:`purge_job`."""
        self._db = db
        self._settings = settings
        self._schema = schema
        self._table = tables_for(schema).outbox
        self._rabbitmq_url = rabbitmq_url or settings.rabbitmq_url
        self._batch_size = batch_size
        self._batch_bytes = batch_bytes
        self._more_waiting = False
        self._poll_interval = poll_interval_seconds
        self._min_backoff = min_backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._publish_timeout = publish_timeout_seconds
        self._retention = retention
        self._purge_interval = purge_interval_seconds
        self._service = settings.service_name
        self._connection: AbstractConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_gauges = 0.0

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Runs :meth:`run` in a background task."""
        if self._task is None or self._task.done():
            self._stopping.clear()
            self._task = asyncio.create_task(self.run(), name=f"outbox-relay-{self._schema}")

    async def stop(self, timeout_seconds: float = 10.0) -> None:
        """Lets the current batch finish (or cancels it after the timeout), then closes."""
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            await self._close_broker()
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_seconds)
        except TimeoutError:
            task.cancel()
            await asyncio.wait([task])

    async def run(self) -> None:
        """Relays until :meth:`stop`; survives broker and database outages."""
        # The relay's own statements (claims, gauges) would each start a trace of
        # their own every poll and bury the requests' traces; what it publishes is
        # traced by the PRODUCER span of each row, in the trace that wrote it.
        with suppress_instrumentation():
            await self._relay_until_stopped()

    async def _relay_until_stopped(self) -> None:
        listener = asyncio.create_task(self._listen(), name=f"outbox-listen-{self._schema}")
        backoff = self._min_backoff
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    sent, failed = await self._relay_batch()
                except _BROKER_ERRORS as exc:
                    sent, failed = 0, 1
                    OUTBOX_RELAY_ERRORS.labels(self._service, "broker").inc()
                    log.warning("outbox relay: broker unavailable: %r", exc)
                    await self._close_broker()
                except SQLAlchemyError as exc:
                    sent, failed = 0, 1
                    OUTBOX_RELAY_ERRORS.labels(self._service, "database").inc()
                    log.warning("outbox relay: database unavailable: %r", exc)
                except Exception:
                    # A relay that dies leaves every event of the service unsent;
                    # log loudly and keep going with backoff instead.
                    sent, failed = 0, 1
                    OUTBOX_RELAY_ERRORS.labels(self._service, "unexpected").inc()
                    log.exception("outbox relay: unexpected error")
                    await self._close_broker()
                await self._refresh_gauges_now_and_then()
                if failed and not sent:
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, self._max_backoff)
                    continue
                backoff = self._min_backoff
                if sent < self._batch_size and not self._more_waiting:
                    await self._sleep(self._poll_interval)
        finally:
            listener.cancel()
            await asyncio.wait([listener])
            await self._close_broker()

    async def relay_once(self) -> int:
        """Publishes one batch; returns how many rows were confirmed (raises on outages)."""
        sent, _ = await self._relay_batch()
        return sent

    # -- one batch -----------------------------------------------------------

    async def _relay_batch(self) -> tuple[int, int]:
        self._more_waiting = False
        # Connect before taking row locks, so an unreachable broker never holds them.
        exchange = await self._ensure_exchange()
        t = self._table
        async with self._db.transaction() as session:
            # Claimed by size first, payloads read after: a batch of big events (bulk's
            # 5,000-row chunks, ~0.5 MB each) decoded 100 at a time held hundreds of MB
            # in the relay's process. Rows past the byte budget stay locked, unsent,
            # until this transaction ends, and go in the next batch.
            claimed = (
                await session.execute(
                    select(t.c.id, func.pg_column_size(t.c.payload))
                    .where(t.c.sent_at.is_(None))
                    .order_by(t.c.created_at)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not claimed:
                return 0, 0
            ids = within_budget(claimed, self._batch_bytes)
            # Cut short by the budget: more rows are waiting, so no pause before the next.
            self._more_waiting = len(ids) < len(claimed)
            rows = (
                await session.execute(select(t).where(t.c.id.in_(ids)).order_by(t.c.created_at))
            ).all()
            # Published concurrently on one channel: frames leave in order and
            # the confirms are awaited together, one round trip per batch.
            outcomes = await asyncio.gather(
                *(self._publish(exchange, row) for row in rows), return_exceptions=True
            )
            sent_ids = [row.id for row, err in zip(rows, outcomes, strict=True) if err is None]
            failures = [
                (row.id, err)
                for row, err in zip(rows, outcomes, strict=True)
                if isinstance(err, BaseException)
            ]
            if sent_ids:
                await session.execute(
                    update(t).where(t.c.id.in_(sent_ids)).values(sent_at=func.clock_timestamp())
                )
            for row_id, err in failures:
                await session.execute(
                    update(t)
                    .where(t.c.id == row_id)
                    .values(attempts=t.c.attempts + 1, last_error=repr(err)[:_MAX_ERROR_TEXT])
                )
        now = time.time()
        for row in rows:
            if row.id in sent_ids:
                OUTBOX_LAG.labels(self._service).observe(max(0.0, now - row.created_at.timestamp()))
        OUTBOX_PUBLISHED.labels(self._service).inc(len(sent_ids))
        if failures and not sent_ids:
            # Nothing got through: the channel or connection is likely broken.
            await self._close_broker()
        if failures:
            OUTBOX_PUBLISH_FAILURES.labels(self._service).inc(len(failures))
            log.warning(
                "outbox relay: %d of %d rows not confirmed: %r",
                len(failures),
                len(rows),
                failures[0][1],
            )
        return len(sent_ids), len(failures)

    async def _publish(self, exchange: AbstractExchange, row: Row[Any]) -> None:
        headers: dict[str, str] = dict(row.headers or {})
        envelope = EventEnvelope(
            id=row.id,
            type=row.type,
            version=row.version,
            occurred_at=row.occurred_at,
            producer=row.producer,
            correlation_id=headers.get(HEADER_REQUEST_ID),
            data=row.payload,
        )
        if not tracing_enabled():
            await self._send(exchange, envelope, headers, row.routing_key)
            return
        # The row's stored context is the span that wrote it (a request, a
        # consumer): publishing later, from this loop, continues that trace, and the
        # message carries this span's context so the consumer's span is its child.
        with tracer.start_as_current_span(
            f"publish {row.routing_key}",
            context=extract_trace_context(headers),
            kind=trace.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "send",
                "messaging.destination.name": exchange.name,
                "messaging.rabbitmq.destination.routing_key": row.routing_key,
                "messaging.message.id": str(row.id),
                "event.type": row.type,
            },
        ):
            await self._send(exchange, envelope, headers | trace_headers(), row.routing_key)

    async def _send(
        self,
        exchange: AbstractExchange,
        envelope: EventEnvelope,
        headers: dict[str, str],
        routing_key: str,
    ) -> None:
        # mandatory=False: an event no queue is bound to yet is dropped by the
        # broker by design (pub/sub); with mandatory the row would never leave.
        await exchange.publish(
            to_amqp_message(envelope, headers),
            routing_key=routing_key,
            mandatory=False,
            timeout=self._publish_timeout,
        )

    async def _ensure_exchange(self) -> AbstractExchange:
        if self._connection is not None and self._connection.is_closed:
            await self._close_broker()
        if self._exchange is None:
            connection = await aio_pika.connect(self._rabbitmq_url, timeout=self._publish_timeout)
            try:
                channel = await connection.channel(publisher_confirms=True)
                self._exchange = await declare_events_exchange(channel, self._settings)
            except BaseException:
                await connection.close()
                raise
            self._connection = connection
        return self._exchange

    async def _close_broker(self) -> None:
        connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await connection.close()

    # -- waiting, waking, metrics --------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _listen(self) -> None:
        """Wakes the loop on NOTIFY; polling covers the gaps while this reconnects."""
        dsn = self._db.primary.url.set(drivername="postgresql").render_as_string(
            hide_password=False
        )
        channel = notify_channel(self._schema)

        def wake(*_: object) -> None:
            self._wake.set()

        while True:
            try:
                conn = await asyncpg.connect(dsn, timeout=self._publish_timeout)
            except Exception as exc:
                log.debug("outbox relay: LISTEN connection failed: %r", exc)
                await asyncio.sleep(_LISTEN_HEALTHCHECK_SECONDS)
                continue
            try:
                await conn.add_listener(channel, wake)
                self._wake.set()  # anything written while we were not listening
                # A query now and then: a half-open TCP connection never reports
                # itself closed, and we would wait for notifications forever.
                while True:
                    await asyncio.sleep(_LISTEN_HEALTHCHECK_SECONDS)
                    await conn.fetchval("SELECT 1", timeout=self._publish_timeout)
            except Exception as exc:
                log.debug("outbox relay: LISTEN connection lost: %r", exc)
            finally:
                conn.terminate()

    def purge_job(self) -> PeriodicJob:
        """Deleting sent rows past the retention: one replica at a time (a job lease)."""

        async def purge() -> None:
            async with self._db.transaction() as session:
                purged = await purge_sent_events(
                    session, schema=self._schema, older_than=self._retention
                )
            if purged:
                log.info("outbox relay: purged %d sent rows", purged)

        return PeriodicJob(
            f"purge-sent-events-{self._schema}",
            purge,
            interval_seconds=self._purge_interval,
            jitter=0.2,
            first_run_after=0.5,
            once_across_replicas=True,
        )

    async def _refresh_gauges_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._last_gauges < _GAUGE_REFRESH_SECONDS:
            return
        self._last_gauges = now
        try:
            await self._refresh_gauges()
        except SQLAlchemyError as exc:
            log.debug("outbox relay: gauges not refreshed: %r", exc)

    async def _refresh_gauges(self) -> None:
        """Backlog and age of the oldest unsent row, from the database (all replicas agree)."""
        t = self._table
        age = func.extract("epoch", func.clock_timestamp() - func.min(t.c.created_at))
        async with self._db.read_session(fresh=True) as session:
            count, oldest_age = (
                await session.execute(select(func.count(), age).where(t.c.sent_at.is_(None)))
            ).one()
        OUTBOX_BACKLOG.labels(self._service).set(count)
        OUTBOX_OLDEST_AGE.labels(self._service).set(float(oldest_age or 0.0))
