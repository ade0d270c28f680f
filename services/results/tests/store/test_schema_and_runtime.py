"""The migrations, the process wiring and the read-your-writes switch."""

from __future__ import annotations

import asyncio
import uuid

import results_service.store.results  # noqa: F401  (its tables join the metadata, as in env.py)
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from httpx import AsyncClient
from redis.asyncio import Redis
from results_service.__main__ import alembic_ini, main
from results_service.read_your_writes import RecentWriters
from results_service.settings import SCHEMA, ResultsSettings
from results_service.store.tables import metadata
from service_kit.db import Database
from sqlalchemy import text


async def test_migrations_create_exactly_the_tables_the_code_describes(db: Database) -> None:
    def diff(connection) -> list:  # type: ignore[no-untyped-def]
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": lambda name, type_, parent: type_ != "schema" or name == SCHEMA,
                # Tables other modules add in later revisions are theirs to compare.
                "include_object": lambda _obj, name, type_, _reflected, _compare_to: (
                    type_ != "table" or f"{SCHEMA}.{name}" in metadata.tables
                ),
                "compare_type": True,
                "version_table_schema": SCHEMA,
            },
        )
        return [
            change
            for change in compare_metadata(context, metadata)
            if not (isinstance(change, tuple) and change[0] == "remove_table")
        ]

    async with db.primary.connect() as connection:
        changes = await connection.run_sync(diff)
    assert changes == []


async def test_migrate_command_is_idempotent(settings: ResultsSettings, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    assert alembic_ini().is_file()
    # Already at head (the test database is a copy of a migrated one): a no-op.
    assert await asyncio.to_thread(main, ["migrate"]) == 0
    db = Database(settings)
    try:
        async with db.read_session() as session:
            version = (
                await session.execute(text(f"SELECT version_num FROM {SCHEMA}.alembic_version"))
            ).scalar_one()
    finally:
        await db.dispose()
    assert version


async def test_health_readiness_and_metrics(client: AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"]["ok"] is True
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert "http_requests" in metrics.text or "http_request" in metrics.text


async def test_workers_add_the_broker_to_readiness(
    worker_app: tuple[FastAPI, AsyncClient],
) -> None:
    _, client = worker_app
    ready = (await client.get("/readyz")).json()
    assert ready["checks"]["rabbitmq"]["ok"] is True


async def test_recent_writers_read_fresh_for_a_while(
    redis: Redis, settings: ResultsSettings
) -> None:
    writers = RecentWriters(redis, key_prefix=settings.redis_key_prefix, ttl_seconds=1)
    user = uuid.uuid4()
    assert await writers.must_read_fresh(user) is False
    await writers.mark(user)
    assert await writers.must_read_fresh(user) is True
    await asyncio.sleep(1.2)
    assert await writers.must_read_fresh(user) is False


async def test_recent_writers_fail_safe_to_the_primary_when_redis_is_down() -> None:
    from redis.asyncio import Redis as RedisClient

    # Nothing listens on port 1: every Redis call fails fast.
    dead = RedisClient.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    writers = RecentWriters(dead, key_prefix="test:", ttl_seconds=10)
    try:
        await writers.mark(uuid.uuid4())  # logged, not raised
        assert await writers.must_read_fresh(uuid.uuid4()) is True
    finally:
        await dead.aclose()


async def test_housekeeping_forgets_only_old_idempotency_records(db: Database) -> None:
    from datetime import timedelta

    from results_service.jobs.housekeeping import purge_idempotency_records

    async with db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO results.inbox (message_id, consumer, received_at) VALUES "
                "(:old, 'c', now() - interval '40 days'), (:new, 'c', now())"
            ),
            {"old": uuid.uuid4(), "new": uuid.uuid4()},
        )
        await session.execute(
            text(
                "INSERT INTO results.processed_chunks "
                "(job_id, chunk_no, exam_id, result, processed_at) VALUES "
                "(:j, 0, :e, '{}', now() - interval '40 days'), (:j, 1, :e, '{}', now())"
            ),
            {"j": uuid.uuid4(), "e": uuid.uuid4()},
        )
    assert await purge_idempotency_records(db, timedelta(days=30)) == (1, 1)
    assert await purge_idempotency_records(db, timedelta(days=30)) == (0, 0)


async def test_openapi_documents_the_paths_and_numbers_as_numbers(client: AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert {"/api/v1/exams", "/api/v1/exams/{exam_id}/marks/audit"} <= set(document["paths"])
    mark = document["components"]["schemas"]["MarkOut"]["properties"]["mark"]
    assert {"type": "number"} in mark["anyOf"]
