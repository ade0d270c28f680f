"""Alembic environment of the auth service: the kit does the work, in schema `auth`."""

from auth_service.store.tables import SCHEMA, metadata
from service_kit.migrations import run_migrations

run_migrations(metadata, schema=SCHEMA)
