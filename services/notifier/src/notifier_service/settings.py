"""Settings of the notifier service, read from the environment (names are the upper-cased fields).

The kit's fields (database, Redis, RabbitMQ, JWT verification, service
credentials, logging) are inherited; the fields below are the notifier's own.
API.md "Configuration an operator sets" names `SMTP_URL`, `MAIL_FROM`,
`FRONTEND_URL`, `WEBHOOK_URL` and `WEBHOOK_SECRET`.
"""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from service_kit.settings import KitSettings

from notifier_service.domain.retry import RETRY_DELAYS_SECONDS
from notifier_service.domain.smtp_url import SmtpServer, parse_smtp_url, validate_mail_from

SCHEMA = "notifier"
"""The Postgres schema every table of this service lives in."""

PRODUCER = "notifier"
"""The ``producer`` of every event this service writes to its outbox."""


class NotifierSettings(KitSettings):
    """Everything the notifier reads from its environment."""

    dev_secret_fields: ClassVar[frozenset[str]] = KitSettings.dev_secret_fields | {"webhook_secret"}

    service_name: str = Field("notifier", description="Name used in logs, metrics and traces.")
    database_replica_url: str | None = Field(
        None,
        validation_alias=AliasChoices("NOTIFIER_DATABASE_REPLICA_URL", "DATABASE_REPLICA_URL"),
        description="Optional read replica (unused: an inbox is read right after it is marked).",
    )
    run_workers: bool = Field(
        True,
        validation_alias=AliasChoices("NOTIFIER_RUN_WORKERS", "RUN_WORKERS"),
        description="Run the notifier's consumers, deliveries, relay and periodic jobs inside "
        "the API process (`NOTIFIER_RUN_WORKERS` overrides the suite-wide `RUN_WORKERS`).",
    )

    notifier_host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    notifier_port: int = Field(8004, ge=1, le=65535, description="Port the HTTP server listens on.")
    auth_url: str = Field(
        "http://127.0.0.1:8001",
        description="Base URL of auth, asked for a user missing from the read model.",
    )
    auth_timeout_seconds: float = Field(5.0, gt=0, description="Timeout of one call to auth.")

    frontend_url: str = Field(
        "http://localhost:5173", description="Base of the links in emails (the frontend)."
    )
    smtp_url: SecretStr | None = Field(
        None,
        description="`smtp://host:port` (STARTTLS when offered) or `smtps://host:port` "
        "(implicit TLS), optionally with `user:password@`; unset: email is off.",
    )
    mail_from: str = Field(
        "Exam results <no-reply@localhost>", description="The From of every email."
    )
    smtp_connections: int = Field(
        8,
        ge=1,
        le=64,
        description="SMTP connections a delivery worker keeps open; each is reused for many "
        "messages.",
    )
    smtp_timeout_seconds: float = Field(
        30.0, gt=0, description="Timeout of one SMTP command (connect included)."
    )
    webhook_url: str | None = Field(
        None, description="Where every notification is POSTed, signed; unset: webhooks are off."
    )
    webhook_secret: SecretStr = Field(
        SecretStr("dev-webhook-secret-change-me"),
        description="HMAC-SHA256 key of the webhook signature (`X-Signature-SHA256`).",
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, description="Timeout of one webhook request."
    )
    webhook_concurrency: int = Field(
        8, ge=1, le=128, description="Webhook requests a delivery worker has in flight at once."
    )
    delivery_retry_delays_seconds: tuple[float, ...] = Field(
        tuple(float(d) for d in RETRY_DELAYS_SECONDS),
        min_length=1,
        description="Delays of the retry tiers of email and webhook deliveries; after the "
        "last one a delivery that still fails goes to the dead-letter queue.",
    )
    delivery_batch_size: int = Field(
        50,
        ge=1,
        le=500,
        description="Notifications per email or webhook delivery message.",
    )

    stream_heartbeat_seconds: float = Field(
        10.0,
        gt=0,
        le=15,
        description="A comment line goes down every open stream at least this often "
        "(API.md: at least every 15 s).",
    )
    max_streams_per_user: int = Field(
        5, ge=1, le=100, description="Open live streams one user may hold at once."
    )
    stream_queue_size: int = Field(
        1000,
        ge=10,
        description="Events waiting for a slow stream; a stream that falls this far behind "
        "is closed (the client resumes with Last-Event-ID).",
    )

    housekeeping_interval_seconds: float = Field(
        3600, gt=0, description="How often old inbox and delivery records are purged."
    )
    idempotency_retention_days: int = Field(
        7, ge=1, description="How long consumed message ids (inbox) are remembered."
    )
    attempts_retention_days: int = Field(
        90, ge=1, description="How long delivery attempts are kept."
    )

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url_parses(cls, value: SecretStr | None) -> SecretStr | None:
        # A secret: it may hold the SMTP password, so it never shows in a repr or a log.
        if value is None or not value.get_secret_value():
            return None
        parse_smtp_url(value.get_secret_value())
        return value

    @field_validator("mail_from")
    @classmethod
    def _mail_from_is_an_address(cls, value: str) -> str:
        return validate_mail_from(value)

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url_is_http(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("WEBHOOK_URL must be an http:// or https:// URL")
        return value

    @field_validator("frontend_url")
    @classmethod
    def _frontend_url_is_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("FRONTEND_URL must be an http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _delays_positive(self) -> Self:
        if any(d <= 0 for d in self.delivery_retry_delays_seconds):
            raise ValueError("DELIVERY_RETRY_DELAYS_SECONDS must be positive")
        return self

    @property
    def email_enabled(self) -> bool:
        return self.smtp_url is not None

    def smtp_server(self) -> SmtpServer | None:
        """Where email goes, or None when email is off."""
        return None if self.smtp_url is None else parse_smtp_url(self.smtp_url.get_secret_value())

    @property
    def webhooks_enabled(self) -> bool:
        return self.webhook_url is not None
