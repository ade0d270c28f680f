"""``results-service [serve|worker|migrate]`` (``python -m results_service``; default ``serve``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from service_kit.cli import run_service_cli

from results_service.settings import ResultsSettings

# Source tree and image both keep alembic.ini three levels above this file
# (services/results/alembic.ini); RESULTS_ALEMBIC_INI overrides it.
DEFAULT_ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def alembic_ini() -> Path:
    return Path(os.environ.get("RESULTS_ALEMBIC_INI", DEFAULT_ALEMBIC_INI))


def main(argv: list[str] | None = None) -> int:
    return run_service_cli(
        prog="results-service",
        settings_type=ResultsSettings,
        app_factory="results_service.main:create_app",
        worker_factory="results_service.main:create_worker_app",
        bind=lambda settings: (settings.results_host, settings.results_port),
        alembic_ini=alembic_ini(),
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
