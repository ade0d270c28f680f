"""Settings of the auth service, read from the environment (names are the upper-cased fields).

Secrets with a development default (the first admin's credentials, and the
kit's database and broker URLs) are refused when ``ENVIRONMENT=production``.
The signing key has no default at all: without ``JWT_SIGNING_KEY_FILE`` the
service refuses to start (see :mod:`auth_service.keys`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator
from service_kit.settings import DEV_SERVICE_CLIENT_SECRET, KitSettings

from auth_service.domain.passwords import MIN_PASSWORD_LENGTH

DEV_ADMIN_EMAIL = "admin@example.edu"
DEV_ADMIN_PASSWORD = "admin-dev-password"


class ServiceClientGrant(BaseModel):
    """One service's entry in ``SERVICE_CLIENTS``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    secret_sha256: list[str] = Field(
        min_length=1, description="Hex SHA-256 of the client's secrets (several while rotating)."
    )
    audiences: list[str] = Field(
        description="Services whose internal endpoints the client may call (e.g. `auth`)."
    )

    @field_validator("secret_sha256")
    @classmethod
    def _hex_digests(cls, value: list[str]) -> list[str]:
        for digest in value:
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest.lower()):
                raise ValueError("secret_sha256 holds hex SHA-256 digests (64 hex digits)")
        return [d.lower() for d in value]


_DEV_SECRET_SHA256 = hashlib.sha256(DEV_SERVICE_CLIENT_SECRET.encode()).hexdigest()
# Who may call whom (DESIGN.md): the gateway and every service read auth's
# revocations; bulk calls results; all of them look users up in auth.
DEV_SERVICE_CLIENTS = {
    "gateway": ServiceClientGrant(secret_sha256=[_DEV_SECRET_SHA256], audiences=["auth"]),
    "results": ServiceClientGrant(secret_sha256=[_DEV_SECRET_SHA256], audiences=["auth"]),
    "bulk": ServiceClientGrant(secret_sha256=[_DEV_SECRET_SHA256], audiences=["auth", "results"]),
    "notifier": ServiceClientGrant(secret_sha256=[_DEV_SECRET_SHA256], audiences=["auth"]),
}


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Whole CPUs of the cgroup's CPU quota (v2 ``cpu.max`` or v1 ``cpu.cfs_*``), or None.

    Rounded down (a 2.5-CPU limit is 2 hashing threads), at least 1.
    """
    try:
        if (root / "cpu.max").exists():
            quota, period = (root / "cpu.max").read_text(encoding="ascii").split()[:2]
        else:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text(encoding="ascii").strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text(encoding="ascii").strip()
        if quota == "max" or int(quota) <= 0:  # v2 "max", v1 -1: no limit
            return None
        return max(1, int(quota) // int(period))
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _cpu_count() -> int:
    """CPUs this process may use: its affinity, capped by a container's CPU limit.

    ``os.cpu_count()`` alone is the node's CPUs in a container; more hashing
    threads than the CPU limit only get throttled and make every hash slower.
    """
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return max(1, min(usable, limit) if limit is not None else usable)


class AuthSettings(KitSettings):
    """Everything the auth service reads from its environment."""

    # auth calls no other service's internal endpoints, so it needs no client
    # secret of its own; it needs the registry of everybody else's.
    dev_secret_fields: ClassVar[frozenset[str]] = (
        KitSettings.dev_secret_fields - {"service_client_secret"}
    ) | {"admin_email", "admin_password", "service_clients"}

    service_name: str = Field("auth", description="Name used in logs, metrics and traces.")
    # API.md names the replica per service (`*_DATABASE_REPLICA_URL`).
    database_replica_url: str | None = Field(
        None,
        validation_alias=AliasChoices("AUTH_DATABASE_REPLICA_URL", "DATABASE_REPLICA_URL"),
        description="Optional read replica; auth reads its own writes, so it uses it rarely.",
    )

    auth_host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    auth_port: int = Field(8001, ge=1, le=65535, description="Port the HTTP server listens on.")

    jwt_signing_key_file: str | None = Field(
        None,
        description="PEM file of the current Ed25519 private key. Required: without it the "
        "service refuses to start (`auth-service keygen PATH` makes one).",
    )
    jwt_previous_public_key_files: str = Field(
        "",
        description="Comma-separated PEM files of more public keys to publish in the JWKS: the "
        "key that signed before the last rotation (its tokens verify until they expire), or "
        "the next key, published before it signs (docs/adr/0002).",
    )
    jwks_max_age_seconds: int = Field(
        300, ge=0, description="`Cache-Control: max-age` of the JWKS document."
    )
    access_token_ttl_seconds: int = Field(
        900, ge=30, description="Lifetime of an access token (JWT)."
    )
    refresh_token_ttl_seconds: int = Field(
        1_209_600, ge=60, description="Lifetime of a refresh token; each use issues a new one."
    )
    invitation_ttl_seconds: int = Field(
        604_800, ge=60, description="How long an invitation (password set) token stays valid."
    )
    password_reset_ttl_seconds: int = Field(
        3600,
        ge=60,
        description="How long a password reset token (`POST /auth/password/forgot`) stays "
        "valid; a newer request voids the older ones at once.",
    )

    argon2_memory_kib: int = Field(
        19_456, ge=8, description="Argon2id memory cost in KiB (OWASP minimum: 19456)."
    )
    argon2_time_cost: int = Field(2, ge=1, description="Argon2id iterations (OWASP minimum: 2).")
    argon2_parallelism: int = Field(1, ge=1, description="Argon2id lanes (OWASP minimum: 1).")
    password_hash_workers: int = Field(
        default_factory=_cpu_count,
        ge=1,
        description="Threads that hash and verify passwords off the event loop (default: the "
        "CPUs the process may use, a container's CPU limit included).",
    )
    password_hash_queue_budget_seconds: float = Field(
        1.0,
        gt=0,
        description="Longest a sign-in, password change, reset or user creation may be "
        "expected to wait for a hashing thread (hashes queued or running / workers x the "
        "moving average of one hash); beyond it the call is answered at once with 503 "
        "`UPSTREAM_UNAVAILABLE` and `Retry-After` (docs/adr/0020).",
    )
    password_hash_max_queue: int = Field(
        128,
        ge=1,
        description="Hard cap on hashes queued or running; an admitted call (as above) "
        "beyond it gets 503 whatever the estimate. The user import consumer waits instead.",
    )

    login_max_failures_per_email: int = Field(
        5,
        ge=1,
        description="Failed sign-ins allowed per email per failure window; also the password "
        "reset requests allowed per email in that window (counted apart).",
    )
    login_failure_window_seconds: int = Field(
        900, ge=1, description="Window of the per-email failure limit (15 minutes)."
    )
    login_max_attempts_per_ip: int = Field(
        60,
        ge=1,
        description="Sign-in attempts allowed per client address per address window; also "
        "the password reset requests (counted apart).",
    )
    login_ip_window_seconds: int = Field(
        60, ge=1, description="Window of the per-address attempt limit (1 minute)."
    )
    trust_forwarded_for: bool = Field(
        True,
        description="Take the client address from the first `X-Forwarded-For` value (the "
        "gateway overwrites that header with the real peer); else the socket peer.",
    )

    service_clients: dict[str, ServiceClientGrant] = Field(
        DEV_SERVICE_CLIENTS,
        description="The services that may get service tokens (docs/adr/0011), as JSON: "
        '`{"results": {"secret_sha256": ["<hex>"], "audiences": ["auth"]}, ...}`. Each '
        "service holds its secret as `SERVICE_CLIENT_SECRET`; auth keeps only the hashes "
        '(`printf %s "$SECRET" | sha256sum`). The default holds the development secret '
        "for gateway, results, bulk and notifier, and is refused in production.",
    )
    service_token_ttl_seconds: int = Field(
        300, ge=30, le=3600, description="Lifetime of a service token."
    )

    admin_email: str = Field(
        DEV_ADMIN_EMAIL, description="First admin, created at start if no user has this email."
    )
    admin_password: str = Field(
        DEV_ADMIN_PASSWORD,
        description="Password of the first admin; empty disables the bootstrap.",
    )

    @field_validator("admin_password")
    @classmethod
    def _admin_password_follows_policy(cls, value: str) -> str:
        if value and len(value) < MIN_PASSWORD_LENGTH:
            raise ValueError(f"ADMIN_PASSWORD must have at least {MIN_PASSWORD_LENGTH} characters")
        return value

    @property
    def previous_public_key_paths(self) -> list[str]:
        return [p.strip() for p in self.jwt_previous_public_key_files.split(",") if p.strip()]
