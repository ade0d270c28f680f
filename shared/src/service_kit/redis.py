"""Redis client from ``REDIS_URL``, or through Sentinel when ``REDIS_SENTINELS`` is set.

With Sentinel the client asks the Sentinels for the current master on every new
connection, so a failover is followed without a restart. Timeouts are short:
Redis holds caches, locks and counters, and a hung Redis must degrade speed,
never block a request.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from service_kit.settings import KitSettings

SOCKET_TIMEOUT_SECONDS = 0.5


def parse_sentinels(spec: str) -> list[tuple[str, int]]:
    """``"a:26379, b:26380"`` -> ``[("a", 26379), ("b", 26380)]``."""
    nodes: list[tuple[str, int]] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"REDIS_SENTINELS entry {item!r} is not host:port")
        nodes.append((host.strip("[]"), int(port)))
    if not nodes:
        raise ValueError("REDIS_SENTINELS is set but names no sentinel")
    return nodes


def create_redis(settings: KitSettings) -> Redis:
    if settings.redis_sentinels:
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            parse_sentinels(settings.redis_sentinels),
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        )
        client: Redis = sentinel.master_for(
            settings.redis_sentinel_master,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
            retry_on_timeout=False,
        )
        return client
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        health_check_interval=30,
    )


async def ping_redis(client: Redis) -> None:
    await client.ping()
