"""Every service's command line: ``serve`` (default), ``worker``, ``migrate``, and extras.

A service's ``__main__`` is a call to :func:`run_service_cli`::

    sys.exit(run_service_cli(
        prog="results-service",
        settings_type=ResultsSettings,
        app_factory="results_service.main:create_app",
        worker_factory="results_service.main:create_worker_app",
        bind=lambda s: (s.results_host, s.results_port),
        alembic_ini=alembic_ini(),
    ))

``serve`` runs the HTTP API (and the workers when ``RUN_WORKERS`` is on);
``worker`` runs only the consumers, the relay and the periodic jobs, serving
health, readiness and metrics on ``WORKER_HOST:WORKER_PORT``; ``migrate``
applies the schema's migrations and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from service_kit.http_protocol import HttpLimits
from service_kit.migrations import upgrade_to_head
from service_kit.serve import serve
from service_kit.settings import KitSettings

S = TypeVar("S", bound=KitSettings)


@dataclass(frozen=True, slots=True)
class ExtraCommand:
    """A service's own subcommand: ``run`` gets the parsed arguments, returns the exit code."""

    help: str
    run: Callable[[argparse.Namespace], int]
    arguments: Sequence[str] = ()
    """Positional argument names it takes."""


def run_service_cli(
    *,
    prog: str,
    settings_type: type[S],
    app_factory: str,
    worker_factory: str,
    bind: Callable[[S], tuple[str, int]],
    alembic_ini: Path,
    argv: Sequence[str] | None = None,
    extra: Mapping[str, ExtraCommand] | None = None,
    check_before_serving: Callable[[S], str | None] | None = None,
) -> int:
    """Parses ``argv`` and runs the command; returns the process exit code.

    ``check_before_serving`` returns an error line (exit 2) for a setting that
    would only fail inside uvicorn's startup with a long traceback.
    """
    parser = argparse.ArgumentParser(prog=prog)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the HTTP API (and the workers when RUN_WORKERS)")
    commands.add_parser(
        "worker", help="run consumers, relay and periodic jobs; health and metrics only"
    )
    commands.add_parser("migrate", help="apply the database migrations and exit")
    for name, command in (extra or {}).items():
        sub = commands.add_parser(name, help=command.help)
        for argument in command.arguments:
            sub.add_argument(argument)
    args = parser.parse_args(argv)

    if extra and args.command in extra:
        return extra[args.command].run(args)
    settings = settings_type()
    if args.command == "migrate":
        asyncio.run(upgrade_to_head(alembic_ini, settings.database_url))
        print(f"{prog}: migrations applied", file=sys.stderr)
        return 0
    if check_before_serving is not None:
        problem = check_before_serving(settings)
        if problem:
            print(f"{prog}: {problem}", file=sys.stderr)
            return 2
    limits = HttpLimits.from_settings(settings)
    if args.command == "worker":
        serve(worker_factory, host=settings.worker_host, port=settings.worker_port, limits=limits)
        return 0
    host, port = bind(settings)
    serve(app_factory, host=host, port=port, limits=limits)
    return 0
