"""How a consumer's failure is classified: retry later, or dead-letter now.

Transient: the cause is outside the message and expected to pass (a database
failover, a lock held elsewhere, a timeout, a dependency being down). These go
to the retry tiers. Everything else is treated as permanent and dead-lettered
at once with its stack trace logged: retrying a bug only delays the DLQ alert.
A handler that knows better raises :class:`TransientError` or
:class:`PermanentError` itself.
"""

from __future__ import annotations

from aio_pika.exceptions import AMQPConnectionError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from service_kit.db import sqlstate_of


class TransientError(Exception):
    """Retry this message later; the cause is expected to go away."""


class PermanentError(Exception):
    """This message can never be processed; dead-letter it."""


# SQLSTATEs that a retry can outlive: connection exceptions (class 08),
# serialization failure and deadlock (40001, 40P01), insufficient resources
# (class 53), operator intervention such as admin shutdown or statement
# timeout (class 57), lock not available (55P03), and a write landing on a
# demoted primary during failover (25006).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53", "57")
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "25006"})


def is_transient_sqlstate(sqlstate: str | None) -> bool:
    if sqlstate is None:
        return False
    return sqlstate in _TRANSIENT_SQLSTATES or sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, PermanentError):
        return False
    if isinstance(exc, TransientError | PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or is_transient_sqlstate(sqlstate_of(exc)):
            return True
        # asyncpg's own socket errors (refused, reset) arrive wrapped.
        return isinstance(exc.orig, OSError) or isinstance(exc.__cause__, OSError)
    return isinstance(
        exc,
        ConnectionError
        | TimeoutError
        | RedisConnectionError
        | RedisTimeoutError
        | AMQPConnectionError,
    )
