"""The tables of the sample service that the migration tests upgrade."""

from __future__ import annotations

from service_kit.messaging import kit_tables
from sqlalchemy import Column, Integer, MetaData, Table, Text

SCHEMA = "sample"

metadata = MetaData()
widgets = Table(
    "widgets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    schema=SCHEMA,
)
kit_tables(metadata, SCHEMA)
