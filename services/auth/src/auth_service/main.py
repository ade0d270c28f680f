"""Composition root: what the auth service is made of. Wiring only, no logic."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from functools import partial
from typing import Any

import orjson
from fastapi import FastAPI
from service_kit.host import Kit, Needs, Parts, ServiceHost
from service_kit.security import JwksKeyStore, TokenVerifier

from auth_service import __version__
from auth_service.api import auth, internal, jwks, users
from auth_service.domain.passwords import Argon2Params
from auth_service.domain.service_clients import ServiceClient
from auth_service.domain.tokens import TokenPolicy
from auth_service.hashing import HashAdmission, PasswordHashing
from auth_service.jobs.purge import purge_job
from auth_service.keys import PublishedKeys, load_key_set
from auth_service.messaging.user_imports import register_user_imports
from auth_service.settings import AuthSettings
from auth_service.store.login_limits import LoginLimiter, LoginLimits
from auth_service.store.tables import SCHEMA
from auth_service.usecases.accounts import Accounts
from auth_service.usecases.password_resets import PasswordResets
from auth_service.usecases.service_access import ServiceAccess
from auth_service.usecases.sessions import Sessions


def own_token_verifier(settings: AuthSettings) -> TokenVerifier:
    """auth verifies its own tokens from its own key set: no HTTP call to itself."""
    document = load_key_set(settings).jwks()  # refuses to start without a signing key

    async def own_jwks() -> Mapping[str, Any]:
        return document

    return TokenVerifier(
        JwksKeyStore(own_jwks, cache_seconds=3600), settings.jwt_issuer, settings.jwt_audience
    )


def wire(kit: Kit[AuthSettings]) -> Parts[AuthSettings]:
    settings = kit.settings
    keys = load_key_set(settings)
    hashing = PasswordHashing(
        Argon2Params(
            settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism
        ),
        settings.password_hash_workers,
        HashAdmission(
            settings.password_hash_queue_budget_seconds, settings.password_hash_max_queue
        ),
    )
    # Password reset requests are limited like sign-ins, counted apart (store.login_limits).
    limits = LoginLimits(
        max_failures_per_email=settings.login_max_failures_per_email,
        failure_window_seconds=settings.login_failure_window_seconds,
        max_attempts_per_address=settings.login_max_attempts_per_ip,
        address_window_seconds=settings.login_ip_window_seconds,
    )
    limiter = LoginLimiter(kit.redis, settings.redis_key_prefix, limits)
    policy = TokenPolicy(
        settings.jwt_issuer, settings.jwt_audience, settings.access_token_ttl_seconds
    )
    sessions = Sessions(kit.db, hashing, limiter, keys, policy, settings.refresh_token_ttl_seconds)
    accounts = Accounts(kit.db, hashing, settings.invitation_ttl_seconds)
    resets = PasswordResets(
        kit.db,
        LoginLimiter(kit.redis, settings.redis_key_prefix, limits, scope="forgot"),
        settings.password_reset_ttl_seconds,
    )
    service_access = ServiceAccess(
        kit.db,
        keys,
        {
            client_id: ServiceClient(
                client_id,
                tuple(bytes.fromhex(d) for d in grant.secret_sha256),
                frozenset(grant.audiences),
            )
            for client_id, grant in settings.service_clients.items()
        },
        issuer=settings.jwt_issuer,
        service_token_ttl_seconds=settings.service_token_ttl_seconds,
        access_token_ttl_seconds=settings.access_token_ttl_seconds,
    )
    return Parts(
        provides={
            Sessions: sessions,
            Accounts: accounts,
            PasswordResets: resets,
            ServiceAccess: service_access,
            PublishedKeys: PublishedKeys(orjson.dumps(keys.jwks())),
            PasswordHashing: hashing,
        },
        consumers=[
            partial(
                register_user_imports,
                db=kit.db,
                hashing=hashing,
                invitation_ttl_seconds=settings.invitation_ttl_seconds,
            )
        ],
        jobs=[purge_job(kit.db, settings)],
        on_start=[lambda: accounts.bootstrap_admin(settings.admin_email, settings.admin_password)],
        on_stop=[hashing.close],
        # auth reads its own revocations from its table, not over HTTP from itself.
        revocations=service_access.revocations,
    )


SERVICE = ServiceHost(
    title="auth",
    version=__version__,
    settings_type=AuthSettings,
    wire=wire,
    routers=[auth.router, users.router, jwks.router, internal.token_router, internal.router],
    needs=Needs(
        schema=SCHEMA,
        outbox=True,
        # Sent rows go soon: user.invited and user.password_reset_requested rows hold
        # a raw token (an invitation's or a password reset's).
        outbox_retention=timedelta(hours=1),
    ),
    token_verifier=own_token_verifier,
)


def create_app(settings: AuthSettings | None = None) -> FastAPI:
    return SERVICE.api_app(settings)


def create_worker_app(settings: AuthSettings | None = None) -> FastAPI:
    return SERVICE.worker_app(settings)
