from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from kit_support import TcpProxy
from prometheus_client import REGISTRY
from service_kit.db import Database, choose_read_target, sqlstate_of
from service_kit.settings import KitSettings
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError


def test_reads_go_to_the_replica_only_when_configured_and_lag_is_acceptable() -> None:
    assert choose_read_target(replica_configured=True, fresh=False) == "replica"
    assert choose_read_target(replica_configured=True, fresh=True) == "primary"
    assert choose_read_target(replica_configured=False, fresh=False) == "primary"
    assert choose_read_target(replica_configured=False, fresh=True) == "primary"


async def test_engine_applies_statement_timeout_and_names_its_role(
    db_settings: KitSettings,
) -> None:
    # The "replica" is the same server here; application_name shows which engine served.
    db = Database(
        db_settings.model_copy(
            update={
                "db_statement_timeout_ms": 1500,
                "database_replica_url": db_settings.database_url,
            }
        )
    )
    try:
        async with db.transaction() as session:
            assert await session.scalar(text("SHOW statement_timeout")) == "1500ms"
            assert await session.scalar(text("SHOW application_name")) == "kit-test:primary"
        async with db.read_session() as session:
            assert await session.scalar(text("SHOW application_name")) == "kit-test:replica"
        async with db.read_session(fresh=True) as session:
            assert await session.scalar(text("SHOW application_name")) == "kit-test:primary"
        await db.ping()
        await db.ping_replica()
    finally:
        await db.dispose()


async def test_transaction_commits_on_success_and_rolls_back_on_error(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(text("CREATE TABLE kit.t (x int)"))
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO kit.t VALUES (1)"))
            raise RuntimeError("boom")
    async with db.transaction() as session:
        await session.execute(text("INSERT INTO kit.t VALUES (2)"))
    async with db.read_session() as session:
        assert (await session.execute(text("SELECT x FROM kit.t"))).scalars().all() == [2]


async def test_connection_on_demoted_primary_is_discarded_not_pooled(
    db_settings: KitSettings,
) -> None:
    db = Database(db_settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}))
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE public.t (x int)"))
        async with db.primary.connect() as conn:
            demoted_pid = await conn.scalar(text("SELECT pg_backend_pid()"))
            # What a demoted primary looks like to a pooled connection: every
            # transaction is read-only from now on.
            await conn.execute(text("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"))
            await conn.commit()
            with pytest.raises(DBAPIError) as caught:
                await conn.execute(text("INSERT INTO public.t VALUES (1)"))
            assert sqlstate_of(caught.value) == "25006"
            assert type(caught.value.driver_exception).__name__ == "ReadOnlySQLTransactionError"
            assert caught.value.connection_invalidated
        async with db.transaction() as session:
            assert await session.scalar(text("SELECT pg_backend_pid()")) != demoted_pid
            await session.execute(text("INSERT INTO public.t VALUES (2)"))
    finally:
        await db.dispose()


async def test_other_errors_keep_the_pooled_connection(db_settings: KitSettings) -> None:
    db = Database(db_settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}))
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE public.u (x int PRIMARY KEY)"))
            await session.execute(text("INSERT INTO public.u VALUES (1)"))
            pid = await session.scalar(text("SELECT pg_backend_pid()"))
        with pytest.raises(IntegrityError) as caught:
            async with db.transaction() as session:
                await session.execute(text("INSERT INTO public.u VALUES (1)"))
        assert not caught.value.connection_invalidated
        async with db.transaction() as session:
            assert await session.scalar(text("SELECT pg_backend_pid()")) == pid
    finally:
        await db.dispose()


async def test_autocommit_commits_each_statement_without_a_transaction_around_it(
    db_settings: KitSettings,
) -> None:
    db = Database(db_settings.model_copy(update={"db_pool_size": 1, "db_max_overflow": 0}))
    try:
        async with db.autocommit() as conn:
            await conn.execute(text("CREATE TABLE public.a (x int)"))
            await conn.execute(text("INSERT INTO public.a VALUES (1)"))
            # now() is the start of the transaction: it moves because each
            # statement is a transaction of its own.
            first = await conn.scalar(text("SELECT now()"))
            await conn.execute(text("SELECT pg_sleep(0.01)"))
            assert await conn.scalar(text("SELECT now()")) > first
        # Never committed explicitly, yet kept.
        async with db.read_session() as session:
            assert await session.scalar(text("SELECT count(*) FROM public.a")) == 1
        # The pooled connection is transactional again for the next user.
        with pytest.raises(RuntimeError):
            async with db.transaction() as session:
                await session.execute(text("INSERT INTO public.a VALUES (2)"))
                raise RuntimeError("boom")
        async with db.read_session() as session:
            assert await session.scalar(text("SELECT count(*) FROM public.a")) == 1
    finally:
        await db.dispose()


@asynccontextmanager
async def database_behind_proxy(
    db_settings: KitSettings, ping_after_idle_seconds: float
) -> AsyncIterator[tuple[Database, TcpProxy]]:
    """A one-connection Database whose server can "restart" (the proxy cuts every connection)."""
    proxy = TcpProxy(5432)
    await proxy.start()
    url = db_settings.database_url.replace(":5432/", f":{proxy.port}/")
    db = Database(
        db_settings.model_copy(
            update={
                "database_url": url,
                "db_pool_size": 1,
                "db_max_overflow": 0,
                "db_ping_after_idle_seconds": ping_after_idle_seconds,
            }
        )
    )
    try:
        yield db, proxy
    finally:
        await db.dispose()
        await proxy.stop()


async def backend_pid(db: Database) -> int:
    async with db.autocommit() as conn:
        pid = await conn.scalar(text("SELECT pg_backend_pid()"))
    assert isinstance(pid, int)
    return pid


async def restart_server(proxy: TcpProxy) -> None:
    await proxy.stop()
    await proxy.start()


async def test_a_connection_left_dead_by_a_server_restart_is_replaced_before_use(
    db_settings: KitSettings,
) -> None:
    async with database_behind_proxy(db_settings, ping_after_idle_seconds=0.2) as (db, proxy):
        before = await backend_pid(db)
        await restart_server(proxy)
        await asyncio.sleep(0.3)  # the outage outlasts the idle window

        # No error reaches the caller: the ping found the dead connection first.
        assert await backend_pid(db) != before


async def test_with_a_zero_idle_window_every_checkout_is_pinged(db_settings: KitSettings) -> None:
    async with database_behind_proxy(db_settings, ping_after_idle_seconds=0) as (db, proxy):
        before = await backend_pid(db)
        await restart_server(proxy)

        assert await backend_pid(db) != before


async def test_a_connection_used_within_the_idle_window_is_not_pinged(
    db_settings: KitSettings,
) -> None:
    # The documented price of skipping the ping: a connection that dies
    # moments after its last use fails the one statement that finds out...
    async with database_behind_proxy(db_settings, ping_after_idle_seconds=60) as (db, proxy):
        before = await backend_pid(db)
        await restart_server(proxy)

        with pytest.raises(DBAPIError) as caught:
            await backend_pid(db)
        assert caught.value.connection_invalidated
        # ...and the pool reconnects for the next one.
        assert await backend_pid(db) != before


async def test_pool_usage_is_read_at_scrape_time_against_its_maximum(
    db_settings: KitSettings,
) -> None:
    service = f"{db_settings.service_name}-pool"
    db = Database(
        db_settings.model_copy(
            update={"service_name": service, "db_pool_size": 2, "db_max_overflow": 1}
        )
    )
    labels = {"service": service, "role": "primary"}

    def gauge(name: str) -> float | None:
        return REGISTRY.get_sample_value(name, labels)

    try:
        assert gauge("db_pool_connections_max") == 3
        assert gauge("db_pool_connections_open") == 0
        async with db.primary.connect() as first, db.primary.connect() as second:
            await first.execute(text("SELECT 1"))
            await second.execute(text("SELECT 1"))
            assert gauge("db_pool_connections_in_use") == 2
        assert gauge("db_pool_connections_in_use") == 0
        assert gauge("db_pool_connections_open") == 2
    finally:
        await db.dispose()
