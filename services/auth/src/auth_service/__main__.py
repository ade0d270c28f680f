"""Command line: ``auth-service [serve|worker|migrate]``, ``auth-service keygen PATH``.

Also runnable as ``python -m auth_service ...``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from service_kit.cli import ExtraCommand, run_service_cli

from auth_service.keys import SigningKeyError, generate_key_file, load_key_set
from auth_service.settings import AuthSettings


def alembic_ini() -> Path:
    """services/auth/alembic.ini (the image keeps the source layout); AUTH_ALEMBIC_INI overrides."""
    override = os.environ.get("AUTH_ALEMBIC_INI")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "alembic.ini"


def _signing_key_problem(settings: AuthSettings) -> str | None:
    # Checked before serving so a missing key is one clear line, not a uvicorn traceback.
    try:
        load_key_set(settings)
    except SigningKeyError as exc:
        return str(exc)
    return None


def _keygen(args: argparse.Namespace) -> int:
    path: str = args.path
    try:
        kid, created = generate_key_file(path)
    except SigningKeyError as exc:
        print(f"auth-service: {exc}", file=sys.stderr)
        return 1
    if created:
        print(f"auth-service: wrote Ed25519 key {path} (public key {path}.pub), kid {kid}")
    else:
        print(f"auth-service: {path} exists, left unchanged (kid {kid})")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_service_cli(
        prog="auth-service",
        settings_type=AuthSettings,
        app_factory="auth_service.main:create_app",
        worker_factory="auth_service.main:create_worker_app",
        bind=lambda settings: (settings.auth_host, settings.auth_port),
        alembic_ini=alembic_ini(),
        argv=argv,
        extra={
            "keygen": ExtraCommand(
                "write a new Ed25519 signing key to PATH (never overwrites)", _keygen, ("path",)
            )
        },
        check_before_serving=_signing_key_problem,
    )


if __name__ == "__main__":
    sys.exit(main())
