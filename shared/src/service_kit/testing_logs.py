"""Test support: everything the loggers write during a block, and a check that no secret is in it.

::

    with capture_all_logs() as logs:
        ...  # sign in, fail a write, refresh a token
    logs.assert_free_of({"password": PASSWORD, "refresh token": refresh}, ARGON2_HASH)

While the block runs the root logger is at DEBUG, and so are the loggers of
SQLAlchemy (``sqlalchemy.engine``: statements, parameters, rows) and uvicorn,
which keep themselves quieter otherwise: the check covers what an operator or
a developer could switch on, not only today's levels. Loggers the kit's
``configure_logging`` pins (httpx's URLs, aiormq's frames with event bodies)
keep their pins: those are part of what keeps secrets out. Records are
formatted by the kit's JSON formatter, exception tracebacks (chained causes
included) and ``extra`` fields with them, so what is scanned is what would be
written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from service_kit.logging import JsonFormatter

#: An Argon2 hash in PHC form (``$argon2id$v=19$m=...,t=...,p=...$salt$digest``):
#: for hashes a test cannot know, such as the one of a write that failed.
ARGON2_HASH = re.compile(r"\$argon2(?:id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]{8,}")

#: A secret also counts as found when any piece of it this long is: drivers and
#: libraries shorten the values they quote (asyncpg keeps 40 characters).
PIECE_LENGTH = 16


def secrets_in(text: str, secrets: Mapping[str, str], *patterns: re.Pattern[str]) -> dict[str, str]:
    """The name of each secret (or pattern) found in ``text``, with the line it is in."""
    found: dict[str, str] = {}
    lines = text.splitlines()
    for name, secret in secrets.items():
        width = min(PIECE_LENGTH, len(secret))
        pieces = {secret[i : i + width] for i in range(len(secret) - width + 1)}
        line = next((ln for ln in lines if any(p in ln for p in pieces)), None)
        if line is not None:
            found[name] = line
    for pattern in patterns:
        line = next((ln for ln in lines if pattern.search(ln)), None)
        if line is not None:
            found[pattern.pattern] = line
    return found


@dataclass
class CapturedLogs:
    """The records logged while :func:`capture_all_logs` ran."""

    records: list[logging.LogRecord] = field(default_factory=list)

    def text(self) -> str:
        """One JSON line per record, as the kit writes them (tracebacks inside the line)."""
        formatter = JsonFormatter("capture")
        return "\n".join(formatter.format(record) for record in self.records)

    def assert_free_of(self, secrets: Mapping[str, str], *patterns: re.Pattern[str]) -> None:
        """Fails naming each secret or pattern that is in the logs, and one line holding it."""
        assert self.records, "nothing was logged: the capture saw nothing to check"
        leaks = secrets_in(self.text(), secrets, *patterns)
        assert not leaks, "secrets in the logs:\n" + "\n".join(
            f"- {name}: {line[:2000]}" for name, line in leaks.items()
        )


class _Collect(logging.Handler):
    def __init__(self, logs: CapturedLogs) -> None:
        super().__init__(logging.DEBUG)
        self._logs = logs

    def emit(self, record: logging.LogRecord) -> None:
        self._logs.records.append(record)


# Loggers quieter than the root by their library's choice, lowered for the capture.
_LOWERED = ("sqlalchemy", "uvicorn", "uvicorn.error", "uvicorn.access")


@contextmanager
def capture_all_logs() -> Iterator[CapturedLogs]:
    """Every record logged during the block, root and SQLAlchemy and uvicorn at DEBUG.

    Levels and handlers are restored afterwards. Start it after the app is
    built: the kit's ``configure_logging`` replaces the root logger's handlers.
    """
    logs = CapturedLogs()
    handler = _Collect(logs)
    root = logging.getLogger()
    lowered = [root, *(logging.getLogger(name) for name in _LOWERED)]
    saved_levels = {lg: lg.level for lg in lowered}
    # A logger that does not pass records up gets the handler itself.
    isolated = [
        lg
        for lg in logging.Logger.manager.loggerDict.values()
        if isinstance(lg, logging.Logger) and not lg.propagate
    ]
    root.addHandler(handler)
    for lg in isolated:
        lg.addHandler(handler)
    for lg in lowered:
        lg.setLevel(logging.DEBUG)
    try:
        yield logs
    finally:
        for lg, level in saved_levels.items():
            lg.setLevel(level)
        for lg in isolated:
            lg.removeHandler(handler)
        root.removeHandler(handler)
