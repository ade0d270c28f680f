"""Settings base every service extends.

Values come from the environment (and an optional ``.env``); each field says
what it is so generated docs explain it. Secrets carry a dev default that makes
``make run`` work out of the box and are refused when ``ENVIRONMENT=production``,
so a forgotten variable fails the deploy instead of running with a public key.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
DEV_REDIS_URL = "redis://127.0.0.1:6379/0"
DEV_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEV_CURSOR_SECRET = "dev-cursor-secret-not-for-production"
# One development secret for every service's client credential: auth's default
# SERVICE_CLIENTS holds its hash for each client. Refused in production.
DEV_SERVICE_CLIENT_SECRET = "dev-service-client-secret-not-for-production"


class DevSecretInProduction(ValueError):
    """A secret still holds its development default while ENVIRONMENT=production."""


class KitSettings(BaseSettings):
    """Settings shared by every service: environment, logging, backing services."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # Fields (by name) whose dev default is refused in production. Subclasses extend it.
    dev_secret_fields: ClassVar[frozenset[str]] = frozenset(
        {"database_url", "rabbitmq_url", "cursor_secret", "service_client_secret"}
    )

    service_name: str = Field("service", description="Name used in logs, metrics and traces.")
    environment: Literal["development", "test", "production"] = Field(
        "development", description="Deployment environment; production refuses dev secrets."
    )
    log_level: str = Field("INFO", description="Root log level.")
    log_json: bool = Field(True, description="Log as one JSON object per line.")

    database_url: str = Field(DEV_DATABASE_URL, description="PostgreSQL primary (asyncpg URL).")
    database_replica_url: str | None = Field(
        None, description="Optional read replica for lag-tolerant reads."
    )
    db_pool_size: int = Field(10, ge=1, description="Connections kept per engine.")
    db_max_overflow: int = Field(10, ge=0, description="Extra connections allowed under load.")
    db_pool_timeout_seconds: float = Field(5.0, gt=0, description="Wait for a pooled connection.")
    db_ping_after_idle_seconds: float = Field(
        0.5,
        ge=0,
        description="Test a pooled connection with a round trip before handing it out when it "
        "sat unused in the pool longer than this; 0 tests every one. The test (BEGIN, a query, "
        "ROLLBACK with asyncpg) is skipped for a connection returned moments ago, as HikariCP's "
        "aliveBypassWindowMs does: under load it would cost three round trips per checkout. A "
        "server connection that dies within this window fails the statement that uses it, and "
        "the pool then reconnects every connection it holds.",
    )
    db_statement_timeout_ms: int = Field(
        30_000, ge=0, description="Server-side statement timeout; 0 disables it."
    )

    # The HTTP server of every service and of the gateway (service_kit.http_protocol):
    # each limit is checked while the request head is parsed, never after buffering it.
    http_max_url_bytes: int = Field(
        8 * 1024,
        ge=256,
        le=1024 * 1024,
        description="Longest request-target (path and query string) a request may have; a "
        "longer one is answered 414 URI_TOO_LONG as soon as it crosses the limit.",
    )
    http_max_header_bytes: int = Field(
        16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Largest single header (name and value together); a larger one is "
        "answered 431 HEADER_FIELDS_TOO_LARGE.",
    )
    http_max_header_total_bytes: int = Field(
        64 * 1024,
        ge=1024,
        le=8 * 1024 * 1024,
        description="Largest header block (every name and value together); a larger one is "
        "answered 431 HEADER_FIELDS_TOO_LARGE. The server stops reading a request's head "
        "once it is longer than this and the URL limit together, so an endless header costs "
        "no more memory than that.",
    )
    http_max_header_count: int = Field(
        100,
        ge=10,
        le=10_000,
        description="Most header fields a request may have; one more is answered 431 "
        "HEADER_FIELDS_TOO_LARGE.",
    )

    redis_url: str = Field(DEV_REDIS_URL, description="Redis URL when Sentinel is not used.")
    redis_sentinels: str | None = Field(
        None, description="Comma-separated host:port list of Sentinels; overrides REDIS_URL."
    )
    redis_sentinel_master: str = Field("mymaster", description="Sentinel master group name.")
    redis_key_prefix: str = Field(
        "erp:", description="Prefix of every Redis key this suite writes."
    )

    rabbitmq_url: str = Field(DEV_RABBITMQ_URL, description="RabbitMQ URL.")
    events_exchange: str = Field("erp.events", description="Durable topic exchange for events.")
    queue_prefix: str = Field("", description="Prefix for queue names (tests isolate with it).")
    queue_expires_seconds: float | None = Field(
        None,
        gt=0,
        description="Delete a consumer's queues this long after they were last used "
        "(`x-expires`). Unset in deployments; tests and throwaway runs set it so queues of a "
        "killed run cannot pile up in the broker (hundreds of orphaned quorum queues stall "
        "a small RabbitMQ node).",
    )

    jwt_issuer: str = Field("exam-results-auth", description="Expected `iss` of access tokens.")
    jwt_audience: str = Field("exam-results", description="Expected `aud` of access tokens.")
    jwks_url: str = Field(
        "http://127.0.0.1:8001/.well-known/jwks.json", description="Where the JWKS is fetched."
    )
    jwks_cache_seconds: int = Field(300, ge=1, description="How long a fetched JWKS is trusted.")

    auth_url: str = Field(
        "http://127.0.0.1:8001",
        description="Base URL of the auth service: its internal endpoints (service tokens, "
        "revocations, user lookups) are called there, never through the gateway.",
    )
    service_client_id: str = Field(
        "",
        description="This service's client id for service tokens (docs/adr/0011); empty: "
        "SERVICE_NAME.",
    )
    service_client_secret: SecretStr = Field(
        SecretStr(DEV_SERVICE_CLIENT_SECRET),
        min_length=16,
        description="This service's client secret, exchanged at auth for short-lived tokens "
        "that open other services' `/internal` endpoints. From the service's own Kubernetes "
        "Secret; auth keeps its SHA-256 in `SERVICE_CLIENTS`.",
    )
    revocation_poll_seconds: float = Field(
        0.5,
        gt=0,
        le=10,
        description="How often this process asks auth for new access-token revocations "
        "(logout, deactivation, role change...): a revoked token is refused here at most "
        "this long (plus one round trip) after auth recorded it.",
    )
    revocation_max_staleness_seconds: float = Field(
        900.0,
        gt=0,
        description="How long the revocations already held stay trusted while auth cannot be "
        "reached; past it (and before the first sync) tokens are answered with 503.",
    )

    run_workers: bool = Field(
        True,
        description="Run this service's message consumers, outbox relay and periodic jobs "
        "inside the API process. Set false for an API-only Deployment when a worker "
        "Deployment (same image, `worker` command) runs them.",
    )
    consumer_prefetch: int = Field(
        16, ge=1, le=1000, description="Unacknowledged deliveries per consumer (bounded prefetch)."
    )
    queue_depth_poll_seconds: float = Field(
        15.0,
        gt=0,
        description="How often a consuming process reads its queues' depth from the broker "
        "(messages_queue_ready, messages_queue_consumers).",
    )
    worker_host: str = Field(
        "127.0.0.1", description="Address a worker process serves health and metrics on."
    )
    worker_port: int = Field(
        9100,
        ge=1,
        le=65535,
        description="Port a worker process (the `worker` command) serves /healthz, /readyz "
        "and /metrics on.",
    )

    cursor_secret: SecretStr = Field(
        SecretStr(DEV_CURSOR_SECRET),
        min_length=16,
        description="Key of the HMAC that signs list cursors (`next_cursor`), so a garbled or "
        "forged cursor is refused with 400 instead of reading a wrong page. Every replica of a "
        "service must have the same value, or a page fetched from one replica cannot be "
        "continued on another; changing it makes the cursors handed out before invalid "
        "(clients start the list again). At least 16 characters, e.g. `openssl rand -hex 32`.",
    )

    readiness_timeout_seconds: float = Field(
        2.0, gt=0, description="Per-dependency /readyz budget."
    )

    @property
    def client_id(self) -> str:
        """The client id of this service's credential (``SERVICE_CLIENT_ID`` or its name)."""
        return self.service_client_id or self.service_name

    @model_validator(mode="after")
    def _refuse_dev_secrets_in_production(self) -> KitSettings:
        if self.environment != "production":
            return self
        offending = []
        for name in sorted(self.dev_secret_fields):
            field = type(self).model_fields[name]
            if getattr(self, name) == field.default:
                offending.append((field.alias or name).upper())
        if offending:
            raise DevSecretInProduction(
                "development defaults are refused in production for: " + ", ".join(offending)
            )
        return self

    @model_validator(mode="after")
    def _check_http_limits(self) -> KitSettings:
        if self.http_max_header_bytes > self.http_max_header_total_bytes:
            raise ValueError(
                "HTTP_MAX_HEADER_BYTES must not exceed HTTP_MAX_HEADER_TOTAL_BYTES: "
                "one header that large would be refused by the total anyway"
            )
        return self
