"""Settings of the bulk service, read from the environment (names are the upper-cased fields).

The kit's fields (database, Redis, RabbitMQ, JWT verification, service
credentials, logging) are inherited; the fields below are bulk's own.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from service_kit.settings import KitSettings

SCHEMA = "bulk"
"""The Postgres schema every table of this service lives in."""

PRODUCER = "bulk"
"""The ``producer`` of every event this service writes to its outbox."""

MIB = 1024 * 1024


class BulkSettings(KitSettings):
    """Everything the bulk service reads from its environment."""

    service_name: str = Field("bulk", description="Name used in logs, metrics and traces.")
    database_replica_url: str | None = Field(
        None,
        validation_alias=AliasChoices("BULK_DATABASE_REPLICA_URL", "DATABASE_REPLICA_URL"),
        description="Optional read replica (unused: every read of a job is read-your-writes).",
    )

    run_workers: bool = Field(
        True,
        validation_alias=AliasChoices("BULK_RUN_WORKERS", "RUN_WORKERS"),
        description="Run bulk's consumers, job runner, relay and periodic jobs inside the API "
        "process (`BULK_RUN_WORKERS` overrides the suite-wide `RUN_WORKERS`, so a local suite "
        "can run bulk's workers as processes of their own, as Kubernetes does).",
    )

    bulk_host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    bulk_port: int = Field(8003, ge=1, le=65535, description="Port the HTTP server listens on.")
    results_url: str = Field(
        "http://127.0.0.1:8002",
        description="Base URL of the results service (internal exam and results endpoints).",
    )
    results_timeout_seconds: float = Field(
        10.0, gt=0, description="Timeout of one call to results (connect, and silence mid-stream)."
    )

    results_patience_seconds: float = Field(
        300.0,
        ge=0,
        description="How long a worker keeps asking an unreachable results (growing pauses) "
        "before the job fails with RESULTS_UNAVAILABLE.",
    )

    max_upload_bytes: int = Field(
        50 * MIB, ge=1, description="Largest upload; refused with 413 while it streams in."
    )
    upload_part_bytes: int = Field(
        MIB,
        ge=64 * 1024,
        le=16 * MIB,
        description="Size of the parts an upload or export file is stored in (one row each).",
    )
    max_columns: int = Field(1000, ge=2, description="Most columns a file may have.")
    max_cell_chars: int = Field(10_000, ge=64, description="Longest cell a file may have.")

    marks_chunk_rows: int = Field(
        5000,
        ge=1,
        le=5000,
        description="Mark entries per chunk sent to results (results accepts at most 5000).",
    )
    users_chunk_rows: int = Field(
        200,
        ge=1,
        le=1000,
        description="Users per chunk sent to auth (small: a chunk with passwords hashes each).",
    )
    staging_batch_rows: int = Field(
        10_000, ge=100, description="Parsed rows written to the staging table per COPY."
    )

    job_lease_seconds: float = Field(
        20.0,
        gt=1,
        description="Lease of a worker on a running job, renewed every third of it; a worker "
        "that dies loses its jobs after this long and another takes them over.",
    )
    max_running_jobs: int = Field(
        2, ge=1, le=32, description="Jobs one worker process runs at once."
    )
    job_sweep_seconds: float = Field(
        5.0,
        gt=0,
        description="How often a worker looks for jobs whose lease expired or whose command "
        "was lost, and for chunks that were never answered.",
    )
    chunk_answer_timeout_seconds: float = Field(
        300.0,
        gt=0,
        description="A chunk unanswered this long is sent again (the receiver applies a "
        "chunk once, so a resend is safe).",
    )
    bulk_retention_days: int = Field(
        30,
        ge=1,
        description="Uploaded, export and error data of finished jobs older than this "
        "is deleted (the job row stays).",
    )
    retention_interval_seconds: float = Field(
        3600, gt=0, description="How often the retention cleanup runs (once across replicas)."
    )
    idempotency_retention_days: int = Field(
        7, ge=1, description="How long consumed message ids (inbox) are remembered."
    )
