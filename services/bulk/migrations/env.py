"""Alembic environment of the bulk service: the kit runs it in schema ``bulk``."""

from bulk_service.settings import SCHEMA
from bulk_service.store.tables import metadata
from service_kit.migrations import run_migrations

run_migrations(metadata, schema=SCHEMA)
