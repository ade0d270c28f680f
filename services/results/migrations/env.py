"""Alembic environment of the results service: the kit runs it in schema ``results``."""

from results_service.settings import SCHEMA
from results_service.store import results as _results  # noqa: F401  (its tables join metadata)
from results_service.store.tables import metadata
from service_kit.migrations import run_migrations

run_migrations(metadata, schema=SCHEMA)
