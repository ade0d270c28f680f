from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from service_kit.lock import DistributedLock, LockLost, LockNotAcquired
from service_kit.redis import create_redis
from service_kit.settings import KitSettings


@pytest.fixture
def locks(redis: Redis, settings: KitSettings, unique: str) -> DistributedLock:
    return DistributedLock(redis, key_prefix=settings.redis_key_prefix, name=f"exam-{unique}")


def acquisitions(lock: DistributedLock, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "lock_acquisitions_total", {"lock": lock.name, "outcome": outcome}
    )
    return value or 0.0


async def test_lock_is_exclusive_while_held(locks: DistributedLock) -> None:
    async with locks.hold("e1", lease_seconds=5):
        assert await locks.acquire("e1", 5) is None
        with pytest.raises(LockNotAcquired):
            async with locks.hold("e1", lease_seconds=5, wait_seconds=0.2):
                pass
        async with locks.hold("e2", lease_seconds=5):  # other keys are independent
            pass
    async with locks.hold("e1", lease_seconds=5):  # released on exit
        pass
    assert acquisitions(locks, "timeout") == 2


async def test_waiter_gets_the_lock_when_the_holder_releases(locks: DistributedLock) -> None:
    held = await locks.acquire("e1", 5)
    assert held is not None

    async def release_soon() -> None:
        await asyncio.sleep(0.2)
        await held.release()

    releaser = asyncio.create_task(release_soon())
    async with locks.hold("e1", lease_seconds=5, wait_seconds=3):
        pass
    await releaser
    assert acquisitions(locks, "contended") == 1


async def test_renewal_keeps_the_lock_past_its_lease(locks: DistributedLock, redis: Redis) -> None:
    async with locks.hold("e1", lease_seconds=0.3) as held:
        await asyncio.sleep(1.0)  # more than three leases
        assert not held.lost.is_set()
        assert await redis.get(locks.redis_key("e1")) == held.token.encode()
        assert await locks.acquire("e1", 1) is None
    assert await redis.get(locks.redis_key("e1")) is None


async def test_loss_is_detected_when_the_key_is_deleted(
    locks: DistributedLock, redis: Redis
) -> None:
    with pytest.raises(LockLost):
        async with locks.hold("e1", lease_seconds=0.3) as held:
            await redis.delete(locks.redis_key("e1"))
            await asyncio.sleep(5)  # cancelled at the next renewal, ~0.1 s
    assert held.lost.is_set()


async def test_loss_is_detected_when_the_key_is_taken_over(
    locks: DistributedLock, redis: Redis
) -> None:
    async with locks.hold("e1", lease_seconds=0.3, cancel_on_loss=False) as held:
        await redis.set(locks.redis_key("e1"), "someone-else", px=5000)
        await asyncio.wait_for(held.lost.wait(), 1.0)
        with pytest.raises(LockLost):
            held.check()
    # Our release left the new holder's key alone.
    assert await redis.get(locks.redis_key("e1")) == b"someone-else"


async def test_release_never_deletes_another_holders_lock(
    locks: DistributedLock, redis: Redis
) -> None:
    stale = await locks.acquire("e1", 30)
    assert stale is not None
    # The stale holder's lease ran out (simulated) and a new holder took over.
    await redis.delete(locks.redis_key("e1"))
    fresh = await locks.acquire("e1", 30)
    assert fresh is not None
    assert await stale.release() is False
    assert await redis.get(locks.redis_key("e1")) == fresh.token.encode()
    assert await fresh.release() is True


async def test_works_with_the_kits_redis_client(settings: KitSettings, unique: str) -> None:
    client = create_redis(settings)
    try:
        locks = DistributedLock(client, key_prefix=settings.redis_key_prefix, name=f"k-{unique}")
        async with locks.hold("e1", lease_seconds=0.3) as held:
            await asyncio.sleep(0.5)
            held.check()
    finally:
        await client.aclose()
