"""Composition root: what the notifier is made of. Wiring only, no logic.

The API serves the inbox and the live streams (each API process keeps a
stream hub that LISTENs for new notifications). The worker (``RUN_WORKERS``
on, or the ``worker`` command) consumes the events that notify someone and
auth's user events, relays the outbox (delivery commands), and delivers
email and webhooks from their own queues.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import httpx
from fastapi import FastAPI
from service_kit.host import ConsumerRegistration, Hook, Kit, Needs, Parts, ServiceHost

from notifier_service import __version__
from notifier_service.api import notifications, stream
from notifier_service.clients.auth import AuthUserLookup, UserLookup
from notifier_service.delivery.email import SmtpMailer
from notifier_service.delivery.webhooks import WebhookPoster
from notifier_service.jobs.housekeeping import housekeeping_job
from notifier_service.messaging.causes import register_causes
from notifier_service.messaging.deliveries import (
    register_email_deliveries,
    register_webhook_deliveries,
)
from notifier_service.messaging.users import register_user_events
from notifier_service.settings import SCHEMA, NotifierSettings
from notifier_service.streams.hub import StreamHub, asyncpg_dsn
from notifier_service.streams.slots import StreamSlots
from notifier_service.usecases.notify import Channels


def wire(kit: Kit[NotifierSettings]) -> Parts[NotifierSettings]:
    s, db = kit.settings, kit.db
    # Carries the notifier's service token: auth's internal endpoints refuse calls without one.
    http = httpx.AsyncClient(timeout=s.auth_timeout_seconds, auth=kit.service_tokens.auth("auth"))
    lookup = AuthUserLookup(http, s.auth_url)
    channels = Channels(
        email=s.email_enabled, webhook=s.webhooks_enabled, batch_size=s.delivery_batch_size
    )
    hub = StreamHub(db, asyncpg_dsn(s.database_url), queue_size=s.stream_queue_size)
    slots = StreamSlots(
        kit.redis,
        key_prefix=s.redis_key_prefix,
        max_streams=s.max_streams_per_user,
        ttl_seconds=3 * s.stream_heartbeat_seconds,
    )
    consumers: list[ConsumerRegistration] = [
        partial(register_user_events, db=db),
        partial(register_causes, db=db, lookup=lookup, channels=channels),
    ]
    on_stop: list[Hook] = [http.aclose]
    # A channel that is off has no consumer: its commands are never written.
    mailer = SmtpMailer.from_settings(s)
    if mailer is not None:
        consumers.append(partial(register_email_deliveries, db=db, mailer=mailer, settings=s))
        on_stop.append(mailer.aclose)
    poster = WebhookPoster.from_settings(s)
    if poster is not None:
        consumers.append(partial(register_webhook_deliveries, db=db, poster=poster, settings=s))
        on_stop.append(poster.aclose)
    return Parts(
        provides={
            NotifierSettings: s,
            StreamHub: hub,
            StreamSlots: slots,
            UserLookup: lookup,
        },
        consumers=consumers,
        jobs=[housekeeping_job(db, s)],
        serving=[hub],
        # uvicorn waits for open connections before the lifespan ends: streams
        # must end at SIGTERM, not after the graceful timeout.
        on_termination=[hub.end_streams],
        on_stop=on_stop,
    )


SERVICE = ServiceHost(
    title="notifier",
    version=__version__,
    settings_type=NotifierSettings,
    wire=wire,
    routers=[stream.router, notifications.router],
    # Sent rows go soon: email delivery commands of invitations and resets hold a token.
    needs=Needs(schema=SCHEMA, outbox=True, outbox_retention=timedelta(hours=1)),
)


def create_app(settings: NotifierSettings | None = None) -> FastAPI:
    return SERVICE.api_app(settings)


def create_worker_app(settings: NotifierSettings | None = None) -> FastAPI:
    return SERVICE.worker_app(settings)
