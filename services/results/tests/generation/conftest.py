"""Fixtures of the generation tests, on top of the results suite's (``../conftest.py``).

Each test gets its own database ``results_gen_test_<uuid>`` (cloned from the
suite's migrated template), and the suite's unique Redis key prefix, queue
prefix and events exchange; timings (debounce, sweeps, polls) are shortened so
the flows finish in seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from results_service.settings import ResultsSettings
from service_kit.testing import create_database, drop_database, unique_database_name


@pytest.fixture
async def database_url(
    template_database: str, database_dropper: ThreadPoolExecutor
) -> AsyncIterator[str]:
    name = unique_database_name("results_gen_test")
    url = await create_database(name, template=template_database)
    try:
        yield url
    finally:
        database_dropper.submit(asyncio.run, drop_database(name))


@pytest.fixture
def settings(settings: ResultsSettings) -> ResultsSettings:
    return settings.model_copy(
        update={
            "regeneration_debounce_seconds": 0.5,
            "regeneration_sweep_seconds": 3600.0,
            "publication_poll_seconds": 0.2,
            "generation_lock_lease_seconds": 5.0,
            "generation_lock_wait_seconds": 0.5,
            "generation_wait_seconds": 20.0,
            "generation_work_mem": "64MB",
        }
    )
