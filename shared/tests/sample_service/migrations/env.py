"""A sample service's env.py: the whole of it, as every service writes it."""

from sample_service_tables import SCHEMA, metadata
from service_kit.migrations import run_migrations

run_migrations(metadata, schema=SCHEMA)
