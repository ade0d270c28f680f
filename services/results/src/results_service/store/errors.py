"""Recognising database errors the service answers on purpose (not as a 500)."""

from __future__ import annotations

from service_kit.db import sqlstate_of

UNIQUE_VIOLATION = "23505"


def violated_constraint(exc: BaseException) -> str | None:
    """The constraint (or unique index) name a database error names, if any.

    SQLAlchemy wraps asyncpg's error; the name sits on the driver's exception
    somewhere down the ``orig`` / ``__cause__`` chain.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = getattr(current, "constraint_name", None)
        if isinstance(name, str):
            return name
        inner = getattr(current, "orig", None) or getattr(current, "driver_exception", None)
        current = inner if isinstance(inner, BaseException) else current.__cause__
    return None


def is_unique_violation(exc: BaseException, constraint: str) -> bool:
    return sqlstate_of(exc) == UNIQUE_VIOLATION and violated_constraint(exc) == constraint
