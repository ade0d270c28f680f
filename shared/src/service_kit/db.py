"""Database engines and sessions: the primary for writes, an optional replica for reads.

One :class:`Database` per process, built from settings. Writes and
read-after-write go to the primary through :meth:`Database.transaction`;
reads that tolerate replication lag use :meth:`Database.read_session`, which
goes to the replica only when one is configured and the caller did not ask
for ``fresh``. Whether a read must be fresh (e.g. "this user wrote a moment
ago") is the service's decision; the kit only carries it out. Hot paths that
need one statement only use :meth:`Database.autocommit`, which saves the
BEGIN and COMMIT/ROLLBACK round trips a transaction or session costs.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import asyncpg
from prometheus_client import Gauge
from sqlalchemy import event, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext import asyncio as sqlalchemy_asyncio
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, QueuePool

from service_kit.settings import KitSettings

# SQLSTATE 25006: the server refused a write because it is (now) a standby. A
# pooled connection that answers this sits on a demoted primary after a
# failover; a ping before use cannot notice (the server still answers it).
READ_ONLY_SQL_TRANSACTION = "25006"

DB_POOL_CHECKED_OUT = Gauge(
    "db_pool_connections_in_use",
    "Connections checked out of the pool, by engine role.",
    ["service", "role"],
)
DB_POOL_OPEN = Gauge(
    "db_pool_connections_open",
    "Connections the pool holds open (idle or in use), by engine role.",
    ["service", "role"],
)
DB_POOL_MAX = Gauge(
    "db_pool_connections_max",
    "Connections the pool may open at most (size plus overflow): in use over this is "
    "the pool's saturation.",
    ["service", "role"],
)

ReadTarget = Literal["primary", "replica"]

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def checked_schema(schema: str) -> str:
    """The schema name if it is a plain lower-case identifier (it is spliced into SQL)."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"schema name {schema!r} must match {_SCHEMA_NAME.pattern}")
    return schema


def choose_read_target(*, replica_configured: bool, fresh: bool) -> ReadTarget:
    """Where a read goes: the replica only when there is one and the read may lag."""
    return "replica" if replica_configured and not fresh else "primary"


def sqlstate_of(exc: BaseException | None) -> str | None:
    """The SQLSTATE of a database error, whether raised by SQLAlchemy or asyncpg.

    SQLAlchemy 2.1 wraps asyncpg errors (``EmulatedDBAPIException``); both the
    wrapper and the driver's exception carry ``sqlstate``.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        state = getattr(exc, "sqlstate", None)
        if isinstance(state, str):
            return state
        inner = getattr(exc, "orig", None) or getattr(exc, "driver_exception", None)
        exc = inner if isinstance(inner, BaseException) else exc.__cause__
    return None


# SQLSTATEs that say the server cannot serve us now, not that a statement is wrong:
# class 08 (connection exception), too many connections, and a server shutting down,
# crashed or still starting. Answered 503 with Retry-After, never 500: the caller's
# request was fine and will succeed later (API.md: an upstream that is down gets 503).
_UNAVAILABLE_CLASS = "08"
_UNAVAILABLE_STATES = frozenset({"53300", "57P01", "57P02", "57P03"})


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) means the database cannot be reached or is
    full, as opposed to a fault of the statement or of our code.

    Covers a refused or dropped connection, the server's "too many clients", a
    shutdown or start-up in progress, and our own pool timing out (every connection
    busy for ``DB_POOL_TIMEOUT_SECONDS``).
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        state = getattr(current, "sqlstate", None)
        if isinstance(state, str) and (
            state.startswith(_UNAVAILABLE_CLASS) or state in _UNAVAILABLE_STATES
        ):
            return True
        if isinstance(current, PoolTimeoutError | ConnectionError):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        inner = getattr(current, "orig", None) or getattr(current, "driver_exception", None)
        pending += [
            inner if isinstance(inner, BaseException) else None,
            current.__cause__,
            current.__context__,
        ]
    return False


def _discard_connection_on_demoted_primary(ctx: ExceptionContext) -> None:
    if sqlstate_of(ctx.original_exception) == READ_ONLY_SQL_TRANSACTION:
        # Treated as a disconnect: SQLAlchemy closes this connection instead of
        # returning it to the pool, and invalidates the rest of the pool too
        # (they were all opened to the same demoted server).
        ctx.is_disconnect = True


# Where a pooled connection notes when it last went idle (made, or returned).
_IDLE_SINCE = "service_kit_idle_since"


def _ping_connections_idle_longer_than(engine: AsyncEngine, idle_seconds: float) -> None:
    """``pool_pre_ping``, but only for connections that sat in the pool over ``idle_seconds``.

    Dead pooled connections (a restarted server, a proxy's idle cut-off) are
    still found before use whenever the outage outlasted ``idle_seconds``: a
    restarted server's old connections sat idle for at least as long as it
    was down. 0 pings every checkout, like ``pool_pre_ping``.
    """
    sync_engine = engine.sync_engine
    dialect = sync_engine.dialect

    def note_idle(_: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    def ping_if_idle_long(
        dbapi_connection: DBAPIConnection,
        record: ConnectionPoolEntry,
        _: PoolProxiedConnection,
    ) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is not None and time.monotonic() - idle_since <= idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # What a failed pool_pre_ping does: the server probably restarted, so
            # the pool reconnects every connection it holds, this one first.
            raise InvalidatePoolError() from exc

    event.listen(sync_engine, "connect", note_idle)
    event.listen(sync_engine, "checkin", note_idle)
    event.listen(sync_engine, "checkout", ping_if_idle_long)


# asyncpg's message when it cannot encode a bound value quotes the value's repr.
_ARGUMENT_ERROR = re.compile(r"^invalid input for query argument (\$\d+)")


def _exception_chain(exc: BaseException | None) -> list[BaseException]:
    chain: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in chain):
        chain.append(exc)
        inner = getattr(exc, "orig", None)
        exc = inner if isinstance(inner, BaseException) else (exc.__cause__ or exc.__context__)
    return chain


def _hide_values_in_errors(ctx: ExceptionContext) -> None:
    """Keeps row contents and bound values out of a failed statement's exceptions.

    ``hide_parameters`` takes the parameters out of SQLAlchemy's message, but a
    logged traceback also prints the driver's exceptions: the server's DETAIL
    (``Failing row contains (...)`` lists every column of the row, password
    hash included; ``Key (email)=(...)`` the key), and asyncpg's message when
    it cannot encode a parameter (the value's repr, and its codec's error with
    the whole value). The DETAIL is dropped (SQLSTATE, constraint, table and
    column names stay: handlers map errors by them); an encoding error keeps
    only which parameter failed.
    """
    chain = _exception_chain(ctx.original_exception)
    if ctx.sqlalchemy_exception is not None:
        chain.append(ctx.sqlalchemy_exception)
    for exc in chain:
        if isinstance(exc, asyncpg.PostgresError):
            exc.detail = None
    for driver_error in chain:
        quoted = driver_error.args[0] if driver_error.args else None
        if not isinstance(quoted, str) or (found := _ARGUMENT_ERROR.match(quoted)) is None:
            continue
        hidden = f"invalid input for query argument {found.group(1)} (value hidden)"
        for exc in chain:
            text_arg = exc.args[0] if exc.args else None
            if isinstance(text_arg, str) and quoted in text_arg:
                exc.args = (text_arg.replace(quoted, hidden), *exc.args[1:])
        # The codec's own error, chained below, names the whole value.
        driver_error.__cause__ = driver_error.__context__ = None
        break


class _ResultRowsHidden(logging.Filter):
    """Drops SQLAlchemy's result-row lines (``Row (...)``, logged at DEBUG).

    Rows hold what the parameters would (password hashes, the invitation token
    in an outbox payload) and ``hide_parameters`` does not cover them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        # SQLAlchemy may prefix the message with a connection's logging token.
        return not (isinstance(record.msg, str) and record.msg.endswith("Row %r"))


def hide_values_in_logs(engine: AsyncEngine) -> None:
    """What keeps ``engine``'s values out of the logs, beside ``hide_parameters=True``.

    Every engine the kit makes gets it (and ``hide_parameters``): the
    exceptions of failed statements lose the row contents and values the
    driver put in them, and SQLAlchemy's DEBUG lines lose the result rows.
    """
    event.listen(engine.sync_engine, "handle_error", _hide_values_in_errors)
    logger = engine.sync_engine.logger
    if isinstance(logger, logging.Logger) and not any(
        isinstance(f, _ResultRowsHidden) for f in logger.filters
    ):
        logger.addFilter(_ResultRowsHidden())


def create_engine(url: str, settings: KitSettings, *, role: ReadTarget) -> AsyncEngine:
    """An asyncpg engine with the pool and server settings of ``settings``.

    Values never reach the logs through it: parameters are hidden from
    statement logs and exceptions, and so are the row values and encoding
    errors of the driver (see :func:`hide_values_in_logs`).
    """
    server_settings = {"application_name": f"{settings.service_name}:{role}"}
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    # Looked up in its module at each call, not imported by name: tracing
    # (service_kit.tracing) instruments engines by wrapping the module's function.
    engine = sqlalchemy_asyncio.create_async_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout_seconds,
        # Replaced by a ping that skips connections used moments ago (see below).
        pool_pre_ping=False,
        # Most recently returned first: under moderate load the same few warm
        # connections serve, so they stay inside the no-ping window, and the
        # ones left idle at the bottom are the ones the ping (or recycle) checks.
        pool_use_lifo=True,
        # Recycle well before typical proxy/load-balancer idle cut-offs.
        pool_recycle=1800,
        connect_args={"server_settings": server_settings},
        # A failing write must not log its parameters (a password hash, a token).
        hide_parameters=True,
    )
    hide_values_in_logs(engine)
    event.listen(engine.sync_engine, "handle_error", _discard_connection_on_demoted_primary)
    _ping_connections_idle_longer_than(engine, settings.db_ping_after_idle_seconds)
    pool = engine.sync_engine.pool
    if isinstance(pool, QueuePool):
        DB_POOL_CHECKED_OUT.labels(settings.service_name, role).set_function(pool.checkedout)
        DB_POOL_OPEN.labels(settings.service_name, role).set_function(
            lambda: pool.checkedin() + pool.checkedout()
        )
        DB_POOL_MAX.labels(settings.service_name, role).set(
            settings.db_pool_size + settings.db_max_overflow
        )
    return engine


class Database:
    """The engines and session factories of one process."""

    def __init__(self, settings: KitSettings) -> None:
        self.primary: AsyncEngine = create_engine(settings.database_url, settings, role="primary")
        self.replica: AsyncEngine | None = (
            create_engine(settings.database_replica_url, settings, role="replica")
            if settings.database_replica_url
            else None
        )
        # expire_on_commit=False: objects stay readable after commit without a
        # hidden lazy load (which would fail outside the greenlet context).
        self._primary_sessions = async_sessionmaker(self.primary, expire_on_commit=False)
        self._replica_sessions = (
            async_sessionmaker(self.replica, expire_on_commit=False) if self.replica else None
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session on the primary in one transaction: commit on success, rollback on error."""
        async with self._primary_sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read_session(self, *, fresh: bool = False) -> AsyncIterator[AsyncSession]:
        """A session for reads.

        ``fresh=True`` reads from the primary: use it for read-after-write, e.g.
        when the caller itself wrote a moment ago and must see its own write.
        Otherwise the replica is used when configured. Nothing is committed.
        """
        target = choose_read_target(replica_configured=self.replica is not None, fresh=fresh)
        factory = self._replica_sessions if target == "replica" else self._primary_sessions
        assert factory is not None
        async with factory() as session:
            yield session

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection on the primary on which every statement commits on its own.

        For a single read, or a single statement that is atomic by itself (one
        with data-modifying CTEs, say): it runs without the BEGIN and the
        COMMIT or ROLLBACK round trips around it. Statements that must be
        atomic together belong in :meth:`transaction`, never here.
        """
        async with self.primary.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")

    async def ping(self) -> None:
        """Readiness: the primary answers a query (raises otherwise)."""
        async with self.primary.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def ping_replica(self) -> None:
        """The replica answers a query; a no-op when none is configured."""
        if self.replica is None:
            return
        async with self.replica.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.primary.dispose()
        if self.replica is not None:
            await self.replica.dispose()
