"""``results-service [serve|migrate]`` (``python -m results_service``; default ``serve``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from service_kit.migrations import upgrade_to_head
from service_kit.serve import serve

from results_service.settings import ResultsSettings

# Source tree and image both keep alembic.ini three levels above this file
# (services/results/alembic.ini); RESULTS_ALEMBIC_INI overrides it.
DEFAULT_ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def alembic_ini() -> Path:
    return Path(os.environ.get("RESULTS_ALEMBIC_INI", DEFAULT_ALEMBIC_INI))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="results-service", description=__doc__)
    parser.add_argument(
        "command",
        nargs="?",
        default="serve",
        choices=("serve", "migrate"),
        help="serve: run the HTTP API (and the workers when RUN_WORKERS); "
        "migrate: apply the database migrations and exit",
    )
    args = parser.parse_args(argv)
    settings = ResultsSettings()
    if args.command == "migrate":
        asyncio.run(upgrade_to_head(alembic_ini(), settings.database_url))
        return 0
    serve("results_service.main:create_app", host=settings.results_host, port=settings.results_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
