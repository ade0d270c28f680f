"""``bulk-service [serve|worker|migrate]`` (``python -m bulk_service``; default ``serve``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from service_kit.cli import run_service_cli

from bulk_service.settings import BulkSettings

# Source tree and image both keep alembic.ini three levels above this file
# (services/bulk/alembic.ini); BULK_ALEMBIC_INI overrides it.
DEFAULT_ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def alembic_ini() -> Path:
    return Path(os.environ.get("BULK_ALEMBIC_INI", DEFAULT_ALEMBIC_INI))


def main(argv: list[str] | None = None) -> int:
    return run_service_cli(
        prog="bulk-service",
        settings_type=BulkSettings,
        app_factory="bulk_service.main:create_app",
        worker_factory="bulk_service.main:create_worker_app",
        bind=lambda settings: (settings.bulk_host, settings.bulk_port),
        alembic_ini=alembic_ini(),
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
