"""The kit's Redis client exports its pool usage, read when Prometheus scrapes."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY
from service_kit.redis import create_redis
from service_kit.settings import KitSettings


def pool_gauge(name: str, service: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"service": service})


async def test_pool_gauges_follow_connections_in_use_and_open(settings: KitSettings) -> None:
    service = f"{settings.service_name}-redis-pool"
    client = create_redis(settings.model_copy(update={"service_name": service}))
    try:
        assert pool_gauge("redis_pool_connections_open", service) == 0
        assert pool_gauge("redis_pool_connections_max", service) == 100  # redis-py's default

        # Three commands at once need three connections; each blocks on the
        # server for a moment, so the scrape below sees them checked out.
        async def wait_on_empty_list(n: int) -> None:
            await client.blpop([f"{settings.redis_key_prefix}none-{n}"], 0.3)

        blocking = [asyncio.create_task(wait_on_empty_list(n)) for n in range(3)]
        await asyncio.sleep(0.1)
        assert pool_gauge("redis_pool_connections_in_use", service) == 3
        await asyncio.gather(*blocking)
        assert pool_gauge("redis_pool_connections_in_use", service) == 0
        assert pool_gauge("redis_pool_connections_open", service) == 3
    finally:
        await client.aclose()
