"""Alembic helpers: every service's ``migrations/env.py`` is a few lines.

::

    # services/auth/migrations/env.py
    from auth_service.store.tables import metadata
    from service_kit.migrations import run_migrations

    run_migrations(metadata, schema="auth")

Each service owns one schema. Migrations create it if missing, keep their
``alembic_version`` table inside it (so services never share or fight over
one), and autogenerate looks at that schema only. The database URL comes from
:func:`upgrade_to_head`'s argument, else ``DATABASE_URL``, else the ini's
``sqlalchemy.url``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.runtime.environment import IncludeNameFn, NameFilterParentNames, NameFilterType
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from service_kit.db import hide_values_in_logs
from service_kit.messaging.tables import checked_schema

_URL_ATTRIBUTE = "service_kit.database_url"
_IN_PROCESS = threading.Lock()


def database_url(config: Config) -> str:
    explicit = config.attributes.get(_URL_ATTRIBUTE)
    url = explicit or os.environ.get("DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: set DATABASE_URL or sqlalchemy.url in alembic.ini")
    return str(url)


def _include_name_in(schema: str) -> IncludeNameFn:
    def include_name(
        name: str | None, type_: NameFilterType, _parent_names: NameFilterParentNames
    ) -> bool:
        if type_ == "schema":
            return name == schema
        return True

    return include_name


def _migrate(connection: Connection, target_metadata: MetaData, schema: str) -> None:
    with connection.begin():
        # One migrator per schema at a time (several replicas may start at
        # once); the lock ends with this transaction.
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"alembic:{schema}"}
        )
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=_include_name_in(schema),
            compare_type=True,
        )
        # The connection is already in our transaction: alembic runs inside it,
        # so schema, lock and every revision commit together or not at all.
        context.run_migrations()


async def _run_online(target_metadata: MetaData, schema: str) -> None:
    # Like the kit's other engines: a migration that fails on a row must not log its values.
    engine = create_async_engine(
        database_url(context.config), poolclass=NullPool, hide_parameters=True
    )
    hide_values_in_logs(engine)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, target_metadata, schema)
    finally:
        await engine.dispose()


def run_migrations_online(target_metadata: MetaData, schema: str) -> None:
    """Applies migrations against the database (asyncpg)."""
    asyncio.run(_run_online(target_metadata, checked_schema(schema)))


def run_migrations_offline(target_metadata: MetaData, schema: str) -> None:
    """Emits the SQL script (``alembic upgrade --sql``)."""
    schema = checked_schema(schema)
    context.configure(
        url=database_url(context.config),
        target_metadata=target_metadata,
        literal_binds=True,
        version_table_schema=schema,
        include_schemas=True,
        include_name=_include_name_in(schema),
    )
    with context.begin_transaction():
        context.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        context.run_migrations()


def run_migrations(target_metadata: MetaData, schema: str) -> None:
    """The whole body of a service's ``env.py``."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    if context.is_offline_mode():
        run_migrations_offline(target_metadata, schema)
    else:
        run_migrations_online(target_metadata, schema)


def alembic_config(alembic_ini_path: Path, database_url: str) -> Config:
    """The service's Alembic config, pointed at ``database_url``."""
    config = Config(str(alembic_ini_path))
    location = config.get_main_option("script_location")
    if location and ":" not in location and not Path(location).is_absolute():
        # Relative to the ini file, not to whatever directory we run from.
        config.set_main_option("script_location", str(alembic_ini_path.parent / location))
    config.attributes[_URL_ATTRIBUTE] = database_url
    return config


async def upgrade_to_head(alembic_ini_path: Path, database_url: str) -> None:
    """``alembic upgrade head`` from Python (``make run``, tests, a migration Job).

    Runs in a worker thread: env.py calls ``asyncio.run``, which cannot run
    inside this event loop.
    """
    config = alembic_config(alembic_ini_path, database_url)
    await asyncio.to_thread(_upgrade_serialised, config)


def _upgrade_serialised(config: Config) -> None:
    # alembic.context is one module-level proxy per process: two upgrades in
    # threads at once would trample it. Across processes the advisory lock in
    # _migrate takes over.
    with _IN_PROCESS:
        command.upgrade(config, "head")


def create_job_leases_table(schema: str) -> None:
    """For a service's migration: creates the kit's ``job_leases`` table in ``schema``.

    The columns are the ones :func:`service_kit.messaging.tables.kit_tables`
    declares, so autogenerate finds nothing to change afterwards.
    """
    import sqlalchemy as sa
    from alembic import op

    op.create_table(
        "job_leases",
        sa.Column("name", sa.Text(), nullable=False, comment="The periodic job's name."),
        sa.Column(
            "holder", sa.Text(), nullable=False, comment="Replica that holds or last held it."
        ),
        sa.Column(
            "expires_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="The holder's claim ends here unless renewed.",
        ),
        sa.Column(
            "next_run_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="No replica claims the job before this (set when a run ends).",
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_leases")),
        schema=checked_schema(schema),
        comment="Leases of periodic jobs that run once across replicas (service_kit.jobs).",
    )
