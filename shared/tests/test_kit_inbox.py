from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from kit_support import SCHEMA
from service_kit.db import Database
from service_kit.messaging import claim_message, purge_inbox


async def claim(db: Database, message_id: uuid.UUID, consumer: str = "c") -> bool:
    async with db.transaction() as session:
        return await claim_message(session, message_id, consumer, schema=SCHEMA)


async def test_a_message_is_claimed_once_per_consumer(db: Database) -> None:
    message_id = uuid.uuid4()
    assert await claim(db, message_id)
    assert not await claim(db, message_id)
    assert await claim(db, message_id, consumer="another")


async def test_a_rolled_back_claim_can_be_claimed_again(db: Database) -> None:
    message_id = uuid.uuid4()
    with pytest.raises(RuntimeError):
        async with db.transaction() as session:
            assert await claim_message(session, message_id, "c", schema=SCHEMA)
            raise RuntimeError("side effect failed")
    assert await claim(db, message_id)


async def test_concurrent_claims_let_exactly_one_transaction_win(db: Database) -> None:
    message_id = uuid.uuid4()
    first_claimed = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> bool:
        async with db.transaction() as session:
            won = await claim_message(session, message_id, "c", schema=SCHEMA)
            first_claimed.set()
            await release_first.wait()
            return won

    async def second() -> bool:
        await first_claimed.wait()
        return await claim(db, message_id)

    first_task = asyncio.create_task(first())
    second_task = asyncio.create_task(second())
    await first_claimed.wait()
    await asyncio.sleep(0.2)
    assert not second_task.done()  # blocked on the first one's uncommitted key
    release_first.set()
    assert await first_task is True
    assert await second_task is False


async def test_purge_forgets_only_old_claims(db: Database) -> None:
    message_id = uuid.uuid4()
    assert await claim(db, message_id)
    async with db.transaction() as session:
        assert await purge_inbox(session, schema=SCHEMA, older_than=timedelta(days=1)) == 0
        assert await purge_inbox(session, schema=SCHEMA, older_than=timedelta(0)) == 1
