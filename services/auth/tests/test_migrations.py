"""The migrations create exactly the tables the code queries (store/tables.py), and move data."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from auth_service.domain.users import email_key
from auth_service.settings import AuthSettings
from auth_service.store.tables import SCHEMA, metadata
from service_kit.migrations import alembic_config
from service_kit.testing import temporary_database
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

ALEMBIC_INI = Path(__file__).resolve().parents[1] / "alembic.ini"
FULLWIDTH_STU1 = "\uff53tu1@example.com"
BOLD_STU1 = "\U0001d42ctu1@example.com"


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


async def _migrate_to(url: str, revision: str) -> None:
    await asyncio.to_thread(command.upgrade, alembic_config(ALEMBIC_INI, url), revision)


async def _add_users(url: str, emails: list[str], *, canonical: bool = False) -> list[str]:
    """Users as the service stores them: with their canonical email after 0004, without before."""
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        ids = []
        for email in emails:
            user_id = uuid.uuid4()
            if canonical:
                await conn.execute(
                    "INSERT INTO auth.users (id, email, email_canonical, full_name, role, active) "
                    "VALUES ($1, $2, $3, 'U', 'examiner', true)",
                    user_id,
                    email,
                    email_key(email),
                )
            else:
                await conn.execute(
                    "INSERT INTO auth.users (id, email, full_name, role, active) "
                    "VALUES ($1, $2, 'U', 'examiner', true)",
                    user_id,
                    email,
                )
            ids.append(str(user_id))
        return ids
    finally:
        await conn.close()


async def _canonical_emails(url: str) -> dict[str, str]:
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        rows = await conn.fetch("SELECT email, email_canonical FROM auth.users")
        return {row["email"]: row["email_canonical"] for row in rows}
    finally:
        await conn.close()


async def test_0004_canonicalises_existing_emails_and_indexes_the_canonical_form() -> None:
    async with temporary_database("auth_test_mig") as url:
        await _migrate_to(url, "0003")
        await _add_users(url, ["Ann@example.edu", FULLWIDTH_STU1, "İnfo@example.edu"])

        await _migrate_to(url, "head")

        assert await _canonical_emails(url) == {
            "Ann@example.edu": "ann@example.edu",
            FULLWIDTH_STU1: "stu1@example.com",
            "İnfo@example.edu": "i̇nfo@example.edu",
        }
        # lower() no longer decides: info@ is another address than İnfo@, Stu1@ is taken.
        await _add_users(url, ["info@example.edu"], canonical=True)
        with pytest.raises(asyncpg.UniqueViolationError):
            await _add_users(url, ["Stu1@example.com"], canonical=True)


async def test_0004_stops_on_accounts_that_are_one_address_and_names_their_ids() -> None:
    async with temporary_database("auth_test_mig") as url:
        await _migrate_to(url, "0003")
        ids = await _add_users(url, ["stu1@example.com", FULLWIDTH_STU1, BOLD_STU1])

        with pytest.raises(RuntimeError, match="share one canonical email") as stopped:
            await _migrate_to(url, "head")

        assert all(user_id in str(stopped.value) for user_id in ids)
        assert "example.com" not in str(stopped.value)
        # Nothing changed: the revisions run in one transaction.
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        try:
            assert await conn.fetchval("SELECT version_num FROM auth.alembic_version") == "0003"
        finally:
            await conn.close()
