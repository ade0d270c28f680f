"""The migrations create exactly the tables the code queries (store/tables.py)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from auth_service.settings import AuthSettings
from auth_service.store.tables import SCHEMA, metadata
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": True,
            "include_name": lambda name, type_, _: type_ != "schema" or name == SCHEMA,
            "compare_type": True,
            "version_table_schema": SCHEMA,
        },
    )
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_the_table_definitions(settings: AuthSettings) -> None:
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()

    assert differences == []
