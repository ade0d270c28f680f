"""Gateway settings, from the environment (names are the upper-cased field names).

The gateway owns no secrets and no database: it reads upstream addresses, CORS
origins, limits and timeouts. Every field says what it is, so generated docs
explain it.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator
from service_kit.settings import KitSettings

from gateway_service.proxy.pool import Origin

MIB = 1024 * 1024


class GatewaySettings(KitSettings):
    """Settings of the gateway process."""

    # The gateway uses neither Postgres nor RabbitMQ, so their dev defaults are
    # harmless here; refusing them would force operators to set unused variables.
    # Its client secret is its own: with the development one, anybody could read
    # auth's revocations as the gateway.
    dev_secret_fields: ClassVar[frozenset[str]] = frozenset({"service_client_secret"})

    service_name: str = Field("gateway", description="Name used in logs, metrics and traces.")

    gateway_host: str = Field("127.0.0.1", description="Address the public port binds to.")
    gateway_port: int = Field(8000, ge=1, le=65535, description="Public HTTP port.")
    gateway_metrics_host: str = Field(
        "127.0.0.1", description="Address the Prometheus /metrics port binds to."
    )
    gateway_metrics_port: int = Field(
        9100,
        ge=0,
        le=65535,
        description="Port of the gateway's own /metrics; never the public port. 0 disables it.",
    )

    gateway_workers: int = Field(
        1,
        ge=1,
        le=64,
        description=(
            "Server processes sharing the public port. Keep 1 in Kubernetes (scale with "
            "replicas); more use the cores of one host, with metrics merged across them."
        ),
    )

    results_url: str = Field(
        "http://127.0.0.1:8002", description="Base URL of the results service."
    )
    bulk_url: str = Field("http://127.0.0.1:8003", description="Base URL of the bulk service.")
    notifier_url: str = Field(
        "http://127.0.0.1:8004", description="Base URL of the notifier service."
    )

    cors_allow_origins: str = Field(
        "http://localhost:5173",
        description="Comma-separated browser origins allowed by CORS; `*` is refused.",
    )
    cors_max_age_seconds: int = Field(
        600, ge=0, description="How long a browser may cache a preflight answer."
    )

    max_body_bytes: int = Field(MIB, ge=0, description="Largest request body outside uploads.")
    max_upload_bytes: int = Field(
        50 * MIB, ge=0, description="Largest request body on upload paths (`.../imports`)."
    )

    rate_limit_per_minute: int = Field(
        1200, ge=0, description="Requests per user per minute window; 0 turns the limit off."
    )
    rate_limit_sync_ms: int = Field(
        100,
        ge=0,
        description=(
            "How often local counts are added to the shared Redis counters (ms). "
            "0 asks Redis on every request (exact, slower)."
        ),
    )

    upstream_connect_timeout_seconds: float = Field(
        2.0, gt=0, description="Connect timeout to an upstream."
    )
    upstream_timeout_seconds: float = Field(
        30.0, gt=0, description="Whole-request budget of an ordinary upstream call."
    )
    upstream_transfer_timeout_seconds: float = Field(
        600.0, gt=0, description="Whole-request budget of uploads and downloads."
    )
    upstream_idle_read_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest silence while an upload or download streams."
    )
    upstream_retry_after_seconds: int = Field(
        5, ge=1, description="Retry-After sent with 503 UPSTREAM_UNAVAILABLE."
    )
    upstream_pool_size: int = Field(
        512, ge=1, description="Most open connections to all upstreams together."
    )
    upstream_pool_per_host: int = Field(
        256, ge=0, description="Most open connections to one upstream (0: no per-host cap)."
    )
    upstream_keepalive_seconds: float = Field(
        30.0,
        gt=0,
        description=(
            "Idle time before a pooled upstream connection is closed; kept below the "
            "upstreams' own keep-alive (75 s) so the gateway never reuses a socket "
            "the upstream is closing."
        ),
    )

    openapi_cache_seconds: float = Field(
        30.0, ge=0, description="How long the merged /openapi.json is reused."
    )

    gateway_jwt_required: bool = Field(
        True,
        description=(
            "Verify access tokens at the gateway. Only benchmarks turn it off; "
            "refused in production."
        ),
    )

    @property
    def cors_origins(self) -> frozenset[str]:
        return frozenset(
            o.strip().rstrip("/") for o in self.cors_allow_origins.split(",") if o.strip()
        )

    @property
    def upstreams(self) -> dict[str, str]:
        """Upstream name -> base URL, the names the routing table uses."""
        return {
            "auth": self.auth_url.rstrip("/"),
            "results": self.results_url.rstrip("/"),
            "bulk": self.bulk_url.rstrip("/"),
            "notifier": self.notifier_url.rstrip("/"),
        }

    @model_validator(mode="after")
    def _check_gateway_settings(self) -> GatewaySettings:
        if "*" in self.cors_origins:
            raise ValueError("CORS_ALLOW_ORIGINS must list origins; `*` is refused")
        if self.gateway_metrics_port and self.gateway_metrics_port == self.gateway_port:
            raise ValueError("GATEWAY_METRICS_PORT must differ from GATEWAY_PORT")
        if self.environment == "production" and not self.gateway_jwt_required:
            raise ValueError("GATEWAY_JWT_REQUIRED=false is refused in production")
        for name, url in {**self.upstreams, "jwks": self.jwks_url}.items():
            try:
                Origin.parse(url)
            except ValueError as exc:
                raise ValueError(f"{name.upper()}_URL: {exc}") from None
        return self
