"""Alembic environment of the notifier: the kit runs it in schema ``notifier``."""

from notifier_service.settings import SCHEMA
from notifier_service.store.tables import metadata
from service_kit.migrations import run_migrations

run_migrations(metadata, schema=SCHEMA)
