"""``notifier-service [serve|worker|migrate]`` (``python -m notifier_service``; default serve)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from service_kit.cli import run_service_cli

from notifier_service.settings import NotifierSettings

# Source tree and image both keep alembic.ini three levels above this file
# (services/notifier/alembic.ini); NOTIFIER_ALEMBIC_INI overrides it.
DEFAULT_ALEMBIC_INI = Path(__file__).resolve().parents[2] / "alembic.ini"


def alembic_ini() -> Path:
    return Path(os.environ.get("NOTIFIER_ALEMBIC_INI", DEFAULT_ALEMBIC_INI))


def main(argv: list[str] | None = None) -> int:
    return run_service_cli(
        prog="notifier-service",
        settings_type=NotifierSettings,
        app_factory="notifier_service.main:create_app",
        worker_factory="notifier_service.main:create_worker_app",
        bind=lambda settings: (settings.notifier_host, settings.notifier_port),
        alembic_ini=alembic_ini(),
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
