"""Composition root: builds the auth app from settings. Wiring only, no logic."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import orjson
from fastapi import FastAPI
from service_kit.app import create_app as create_kit_app
from service_kit.db import Database
from service_kit.messaging.relay import OutboxRelay
from service_kit.redis import create_redis, ping_redis
from service_kit.security import JwksKeyStore, TokenVerifier

from auth_service import __version__
from auth_service.api import auth, internal, jwks, users
from auth_service.domain.passwords import Argon2Params
from auth_service.domain.tokens import TokenPolicy
from auth_service.hashing import PasswordHashing
from auth_service.jobs.purge import PeriodicPurge
from auth_service.keys import load_key_set
from auth_service.settings import AuthSettings
from auth_service.store.login_limits import LoginLimiter, LoginLimits
from auth_service.store.tables import SCHEMA
from auth_service.usecases.accounts import Accounts
from auth_service.usecases.sessions import Sessions

# Sent outbox rows go soon: user.invited rows hold a raw invitation token.
OUTBOX_RETENTION = timedelta(hours=1)


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    settings = settings or AuthSettings()
    keys = load_key_set(settings)  # refuses to start without a signing key
    jwks_document = keys.jwks()
    hashing = PasswordHashing(
        Argon2Params(
            settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism
        ),
        settings.password_hash_workers,
    )
    db = Database(settings)
    redis = create_redis(settings)
    limiter = LoginLimiter(
        redis,
        settings.redis_key_prefix,
        LoginLimits(
            max_failures_per_email=settings.login_max_failures_per_email,
            failure_window_seconds=settings.login_failure_window_seconds,
            max_attempts_per_address=settings.login_max_attempts_per_ip,
            address_window_seconds=settings.login_ip_window_seconds,
        ),
    )
    policy = TokenPolicy(
        settings.jwt_issuer, settings.jwt_audience, settings.access_token_ttl_seconds
    )
    sessions = Sessions(db, hashing, limiter, keys, policy, settings.refresh_token_ttl_seconds)
    accounts = Accounts(db, hashing, settings.invitation_ttl_seconds)
    relay = OutboxRelay(db, settings, schema=SCHEMA, retention=OUTBOX_RETENTION)
    purge = PeriodicPurge(db, refresh_ttl_seconds=settings.refresh_token_ttl_seconds)

    async def own_jwks() -> Mapping[str, Any]:
        # auth verifies its own tokens from its own key set: no HTTP to itself.
        return jwks_document

    verifier = TokenVerifier(
        JwksKeyStore(own_jwks, cache_seconds=3600), settings.jwt_issuer, settings.jwt_audience
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await accounts.bootstrap_admin(settings.admin_email, settings.admin_password)
            relay.start()
            purge.start()
            yield
        finally:
            await purge.stop()
            await relay.stop()
            await redis.aclose()
            await db.dispose()
            hashing.close()

    app = create_kit_app(
        settings,
        title="auth",
        version=__version__,
        routers=[auth.router, users.router, jwks.router, internal.router],
        lifespan=lifespan,
    )
    app.state.token_verifier = verifier
    app.state.sessions = sessions
    app.state.accounts = accounts
    app.state.jwks_body = orjson.dumps(jwks_document)
    app.state.readiness.add("db", db.ping)
    # Login works without Redis (limits fail open), so Redis must not make auth unready.
    app.state.readiness.add("redis", lambda: ping_redis(redis), critical=False)
    return app
