"""Logs never hold secrets: the kit's engines keep values out, its logging pins chatty libraries."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from service_kit.db import Database, sqlstate_of
from service_kit.logging import configure_logging
from service_kit.migrations import upgrade_to_head
from service_kit.testing import temporary_database
from service_kit.testing_logs import capture_all_logs, secrets_in
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.exc import DBAPIError

SECRET = "s3cret-value-that-must-never-be-logged"
SECRETS = {"secret": SECRET}
log = logging.getLogger("kit-test.db")


async def _failing(db: Database, statement: str, **params: object) -> DBAPIError:
    with pytest.raises(DBAPIError) as failed:
        async with db.transaction() as session:
            await session.execute(text(statement), params)
    # As the kit's error handlers and the relay log them.
    log.error("write failed", exc_info=failed.value)
    log.warning("write failed: %r / %s", failed.value, failed.value)
    return failed.value


async def test_failed_writes_log_neither_parameters_nor_row_contents(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(
            text("CREATE TABLE kit.accounts (email text UNIQUE, hash text CHECK (hash <> ''))")
        )
        await session.execute(
            text("INSERT INTO kit.accounts VALUES (:email, :hash)"),
            {"email": "ann@example.edu", "hash": SECRET},
        )

    with capture_all_logs() as logs:
        unique = await _failing(
            db,
            "INSERT INTO kit.accounts VALUES (:email, :hash)",
            email="ann@example.edu",
            hash=SECRET,
        )
        # CHECK violations carry "Failing row contains (...)": every column of the row.
        check = await _failing(
            db, "UPDATE kit.accounts SET email = :email, hash = ''", email=SECRET
        )
        async with db.read_session() as session:
            rows = (await session.execute(text("SELECT hash FROM kit.accounts"))).all()

    assert rows == [(SECRET,)]
    logs.assert_free_of(SECRETS | {"email": "ann@example.edu"})
    # What tells one failure from another stays.
    assert (sqlstate_of(unique), sqlstate_of(check)) == ("23505", "23514")
    assert "accounts_email_key" in str(unique)
    assert "[SQL: INSERT INTO kit.accounts" in logs.text()


async def test_a_value_the_driver_cannot_encode_is_not_quoted(db: Database) -> None:
    with capture_all_logs() as logs:
        with pytest.raises(DBAPIError) as failed:
            async with db.read_session() as session:
                # A programming error: a token where a UUID belongs.
                statement = text("SELECT CAST(:id AS uuid)").bindparams(
                    bindparam("id", type_=UUID(as_uuid=False))
                )
                await session.execute(statement, {"id": SECRET})
        log.error("read failed", exc_info=failed.value)

    assert "invalid input for query argument $1 (value hidden)" in str(failed.value)
    logs.assert_free_of(SECRETS)


async def test_migrations_fail_without_logging_the_row(tmp_path: Path) -> None:
    versions = tmp_path / "migrations" / "versions"
    versions.mkdir(parents=True)
    (tmp_path / "migrations" / "env.py").write_text(
        "from sqlalchemy import MetaData\n"
        "from service_kit.migrations import run_migrations\n"
        "run_migrations(MetaData(), schema='logs')\n"
    )
    (versions / "0001_failing.py").write_text(
        "from alembic import op\n"
        "import sqlalchemy as sa\n"
        "revision = '0001'\n"
        "down_revision = None\n"
        "def upgrade():\n"
        "    op.execute('CREATE TABLE logs.t (secret text CHECK (secret = \\'\\'))')\n"
        # Reversed in the source: a traceback quotes source lines, the value must come from the row.
        "    op.get_bind().execute(sa.text('INSERT INTO logs.t VALUES (:s)'), {'s': '"
        + SECRET[::-1]
        + "'[::-1]})\n"
    )
    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = migrations\n")
    async with temporary_database("kit_test_logs") as url:
        with capture_all_logs() as logs:
            with pytest.raises(DBAPIError) as failed:
                await upgrade_to_head(ini, url)
            log.error("migration failed", exc_info=failed.value)

    assert sqlstate_of(failed.value) == "23514"
    logs.assert_free_of(SECRETS)


def test_secrets_are_found_whole_or_by_a_piece() -> None:
    token = uuid.uuid4().hex + uuid.uuid4().hex
    text_ = f"ok\nargument $1: '{token[:40]}...'\n"

    assert secrets_in(text_, {"token": token}) == {"token": f"argument $1: '{token[:40]}...'"}
    assert secrets_in(text_, {"other": uuid.uuid4().hex}) == {}


def test_debug_logging_keeps_urls_and_broker_frames_out() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        # httpx logs whole URLs at INFO, aiormq every frame (event bodies) at DEBUG.
        configure_logging("kit-test", "DEBUG", json_output=True)

        assert root.level == logging.DEBUG
        for name in ("httpx", "httpcore", "aiormq", "aio_pika", "uvicorn.access"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
