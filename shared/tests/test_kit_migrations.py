"""upgrade_to_head against a fresh database, with the sample service's env.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sample_service_tables import SCHEMA, metadata
from service_kit import migrations
from service_kit.migrations import upgrade_to_head
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

SAMPLE_INI = Path(__file__).parent / "sample_service" / "alembic.ini"


async def tables_by_schema(database_url: str) -> dict[str, set[str]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
                )
            )
            found: dict[str, set[str]] = {}
            for schema, table in rows:
                found.setdefault(schema, set()).add(table)
            return found
    finally:
        await engine.dispose()


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": True,
            "include_name": lambda name, type_, _: type_ != "schema" or name == SCHEMA,
            "version_table_schema": SCHEMA,
        },
    )
    return list(compare_metadata(context, metadata))


async def test_upgrade_creates_schema_tables_and_version_in_that_schema(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The explicit URL wins over a DATABASE_URL pointing elsewhere.
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/nowhere")
    await upgrade_to_head(SAMPLE_INI, database_url)

    found = await tables_by_schema(database_url)
    assert found == {SCHEMA: {"widgets", "outbox", "inbox", "job_leases", "alembic_version"}}

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            version = await conn.scalar(text(f"SELECT version_num FROM {SCHEMA}.alembic_version"))
            assert version == "0002"
            # The migration matches the metadata (kit tables included): nothing to autogenerate.
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_upgrade_is_idempotent(database_url: str) -> None:
    await upgrade_to_head(SAMPLE_INI, database_url)
    await upgrade_to_head(SAMPLE_INI, database_url)
    found = await tables_by_schema(database_url)
    assert found == {SCHEMA: {"widgets", "outbox", "inbox", "job_leases", "alembic_version"}}


async def test_upgrade_waits_for_a_concurrent_migrator_of_the_same_schema(
    database_url: str,
) -> None:
    # Another replica is migrating "sample" (it holds the schema's advisory lock).
    other = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await other.execute("SELECT pg_advisory_lock(hashtext('alembic:sample'))")
        upgrade = asyncio.create_task(upgrade_to_head(SAMPLE_INI, database_url))
        await asyncio.sleep(1.0)
        assert not upgrade.done()
        assert await tables_by_schema(database_url) == {}
        await other.execute("SELECT pg_advisory_unlock(hashtext('alembic:sample'))")
        await asyncio.wait_for(upgrade, 30)
    finally:
        await other.close()
    found = await tables_by_schema(database_url)
    assert found == {SCHEMA: {"widgets", "outbox", "inbox", "job_leases", "alembic_version"}}


def test_database_url_prefers_argument_then_environment_then_ini(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://env/db")
    explicit = migrations.alembic_config(SAMPLE_INI, "postgresql+asyncpg://arg/db")
    assert migrations.database_url(explicit).endswith("arg/db")
    plain = Config(str(SAMPLE_INI))
    assert migrations.database_url(plain).endswith("env/db")
    monkeypatch.delenv("DATABASE_URL")
    assert migrations.database_url(plain).endswith("127.0.0.1:5432/postgres")
