"""Settings of the results service, read from the environment (names are the upper-cased fields).

The kit's fields (database, Redis, RabbitMQ, JWT verification, logging) are
inherited; the fields below are this service's own. The database and broker
URLs keep their development defaults only outside production.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from service_kit.settings import KitSettings

SCHEMA = "results"
"""The Postgres schema every table of this service lives in."""

PRODUCER = "results"
"""The ``producer`` of every event this service writes to its outbox."""


class ResultsSettings(KitSettings):
    """Everything the results service reads from its environment."""

    service_name: str = Field("results", description="Name used in logs, metrics and traces.")
    # API.md names the replica per service (`*_DATABASE_REPLICA_URL`).
    database_replica_url: str | None = Field(
        None,
        validation_alias=AliasChoices("RESULTS_DATABASE_REPLICA_URL", "DATABASE_REPLICA_URL"),
        description="Optional read replica for lag-tolerant reads (lists of exams, marks, audit).",
    )

    results_host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    results_port: int = Field(8002, ge=1, le=65535, description="Port the HTTP server listens on.")

    auth_lookup_timeout_seconds: float = Field(
        3.0, gt=0, description="Timeout of one call to auth's student lookup."
    )
    auth_lookup_batch_size: int = Field(
        1000,
        ge=1,
        le=5000,
        description="Student numbers sent per lookup call; a 5000-entry batch makes at most "
        "ceil(missing / this) calls.",
    )

    idempotency_retention_days: int = Field(
        30,
        ge=1,
        description="How long consumed message ids (inbox) and applied import chunks are "
        "remembered; keep it beyond any redelivery or DLQ replay.",
    )
    housekeeping_interval_seconds: float = Field(
        3600, gt=0, description="How often old inbox ids and processed chunks are purged."
    )
    read_your_writes_seconds: int = Field(
        10,
        ge=1,
        description="For this long after a user wrote, their list reads go to the primary, "
        "so a replica's lag never shows them their own write missing.",
    )

    # -- generation, publication, result cache (results_service.generation / .publication)
    generation_lock_lease_seconds: float = Field(
        30.0,
        gt=0,
        description="Lease of the per-exam Redis lock, renewed every third of it while a "
        "generation runs; a holder that stops renewing loses it after this long.",
    )
    generation_lock_wait_seconds: float = Field(
        1.0, gt=0, description="How long one attempt waits for the lock before re-checking."
    )
    generation_wait_seconds: float = Field(
        25.0,
        gt=0,
        description="How long POST .../results/generate waits for fresh results before "
        "answering 503 with Retry-After (the generation goes on); below the gateway's "
        "30 s upstream budget.",
    )
    generation_work_mem: str = Field(
        "256MB", description="work_mem of a generation's compute transaction (in-memory sorts)."
    )
    regeneration_debounce_seconds: float = Field(
        2.0,
        ge=0,
        description="A stale exam regenerates by itself this long after its last marks.changed.",
    )
    regeneration_sweep_seconds: float = Field(
        30.0,
        gt=0,
        description="How often each replica looks for stale exams in PostgreSQL (catches a "
        "lost marks.changed).",
    )
    regeneration_timeout_seconds: float = Field(
        300.0, gt=0, description="Budget of one automatic regeneration before it is retried."
    )
    publication_poll_seconds: float = Field(
        1.0, gt=0, description="How often each replica looks for due scheduled publications."
    )
    results_cache_ttl_seconds: int = Field(
        60,
        ge=1,
        description="TTL of cached result bodies. Keys carry the generation, so results are "
        "never stale; this bounds memory and how long a renamed student's old name shows.",
    )
