"""Command line: ``auth-service [serve]``, ``auth-service migrate``, ``auth-service keygen PATH``.

Also runnable as ``python -m auth_service ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from service_kit.migrations import upgrade_to_head
from service_kit.serve import serve

from auth_service.keys import SigningKeyError, generate_key_file, load_key_set
from auth_service.settings import AuthSettings

APP = "auth_service.main:create_app"


def alembic_ini() -> Path:
    """services/auth/alembic.ini (the image keeps the source layout); AUTH_ALEMBIC_INI overrides."""
    override = os.environ.get("AUTH_ALEMBIC_INI")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "alembic.ini"


def _serve() -> int:
    settings = AuthSettings()
    try:
        # Checked here too so a missing key is one clear line, not a uvicorn traceback.
        load_key_set(settings)
    except SigningKeyError as exc:
        print(f"auth-service: {exc}", file=sys.stderr)
        return 2
    serve(APP, host=settings.auth_host, port=settings.auth_port)
    return 0


def _migrate() -> int:
    settings = AuthSettings()
    asyncio.run(upgrade_to_head(alembic_ini(), settings.database_url))
    print("auth-service: schema auth is at head", file=sys.stderr)
    return 0


def _keygen(path: str) -> int:
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
    parser = argparse.ArgumentParser(prog="auth-service", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve HTTP on AUTH_HOST:AUTH_PORT (the default)")
    commands.add_parser("migrate", help="apply the database migrations of schema auth")
    keygen = commands.add_parser(
        "keygen", help="write a new Ed25519 signing key to PATH (never overwrites)"
    )
    keygen.add_argument("path", metavar="PATH")
    args = parser.parse_args(argv)
    if args.command == "migrate":
        return _migrate()
    if args.command == "keygen":
        return _keygen(args.path)
    return _serve()


if __name__ == "__main__":
    sys.exit(main())
