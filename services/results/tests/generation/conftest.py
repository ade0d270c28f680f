"""Fixtures of the generation tests, on top of the results suite's (``../conftest.py``).

Each test gets its own database (the suite's ``database_url``, cloned from its
migrated template), and the suite's unique Redis key prefix, queue
prefix and events exchange; timings (debounce, sweeps, polls) are shortened so
the flows finish in seconds.
"""

from __future__ import annotations

import pytest
from results_service.settings import ResultsSettings


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
