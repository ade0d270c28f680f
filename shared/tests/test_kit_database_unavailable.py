"""A database that cannot serve a request is 503 with Retry-After, not 500.

Real failures, against real servers: nothing listening on the database's port,
a role over its connection limit (the server's "too many connections"), and the
kit's own pool exhausted. A broken statement stays a 500: it is our fault.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from service_kit.app import create_app
from service_kit.db import Database, database_unavailable
from service_kit.errors import ErrorCode
from service_kit.settings import KitSettings
from service_kit.testing import free_port
from sqlalchemy import text

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def app_on(settings: KitSettings, db: Database) -> FastAPI:
    router = APIRouter()

    @router.get("/count")
    async def count() -> dict[str, int]:
        async with db.read_session() as session:
            return {"n": int((await session.execute(text("SELECT 1"))).scalar_one())}

    @router.get("/broken")
    async def broken() -> dict[str, int]:
        async with db.read_session() as session:
            await session.execute(text("SELECT * FROM no_such_table"))
        return {"n": 0}

    @router.get("/hold")
    async def hold() -> dict[str, int]:
        async with db.read_session() as session:
            await session.execute(text("SELECT pg_sleep(1.5)"))
        return {"n": 1}

    return create_app(settings, title="t", version="1", routers=[router])


async def call(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit.test") as client:
        return await client.get(path)


def assert_unavailable(answer: httpx.Response) -> None:
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == ErrorCode.UPSTREAM_UNAVAILABLE.value
    assert int(answer.headers["retry-after"]) >= 1


async def test_nothing_listening_on_the_databases_port_is_503(settings: KitSettings) -> None:
    dead = settings.model_copy(
        update={
            "database_url": f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing",
            "db_pool_timeout_seconds": 1.0,
        }
    )
    db = Database(dead)
    try:
        assert_unavailable(await call(app_on(dead, db), "/count"))
    finally:
        await db.dispose()


@pytest.fixture
async def limited_role(db_settings: KitSettings) -> AsyncIterator[str]:
    """A login role the server lets hold no connection at all."""
    role = f"kit_full_{uuid.uuid4().hex[:10]}"
    server = await asyncpg.connect(SERVER)
    try:
        await server.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0')
        yield role
    finally:
        await server.execute(f'DROP ROLE IF EXISTS "{role}"')
        await server.close()


async def test_the_servers_too_many_connections_is_503(
    db_settings: KitSettings, limited_role: str
) -> None:
    url = db_settings.database_url.replace("postgres@", f"{limited_role}@", 1)
    full = db_settings.model_copy(update={"database_url": url})
    db = Database(full)
    try:
        assert_unavailable(await call(app_on(full, db), "/count"))
    finally:
        await db.dispose()


async def test_the_pool_exhausted_is_503_and_the_held_request_still_succeeds(
    db_settings: KitSettings,
) -> None:
    tiny = db_settings.model_copy(
        update={"db_pool_size": 1, "db_max_overflow": 0, "db_pool_timeout_seconds": 0.2}
    )
    db = Database(tiny)
    app = app_on(tiny, db)
    try:
        held = asyncio.create_task(call(app, "/hold"))
        await asyncio.sleep(0.4)  # /hold has the only connection for 1.5 s
        assert_unavailable(await call(app, "/count"))
        assert (await held).status_code == 200
        assert (await call(app, "/count")).json() == {"n": 1}
    finally:
        await db.dispose()


async def test_a_broken_statement_is_still_500(db: Database, db_settings: KitSettings) -> None:
    answer = await call(app_on(db_settings, db), "/broken")
    assert answer.status_code == 500
    assert answer.json()["error"]["code"] == ErrorCode.INTERNAL.value
    assert "retry-after" not in answer.headers


def test_only_availability_failures_are_classified_unavailable() -> None:
    assert database_unavailable(ConnectionRefusedError(111, "refused"))
    assert database_unavailable(asyncpg.TooManyConnectionsError("too many clients already"))
    assert database_unavailable(asyncpg.CannotConnectNowError("starting up"))
    wrapped = RuntimeError("while reading")
    wrapped.__cause__ = asyncpg.AdminShutdownError("terminating connection")
    assert database_unavailable(wrapped)
    assert not database_unavailable(asyncpg.UndefinedTableError("no such table"))
    assert not database_unavailable(asyncpg.UniqueViolationError("duplicate key"))
    assert not database_unavailable(ZeroDivisionError())
    assert not database_unavailable(TimeoutError())
