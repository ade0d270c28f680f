"""Redis client from ``REDIS_URL``, or through Sentinel when ``REDIS_SENTINELS`` is set.

With Sentinel the client asks the Sentinels for the current master on every new
connection, so a failover is followed without a restart. Timeouts are short:
Redis holds caches, locks and counters, and a hung Redis must degrade speed,
never block a request.
"""

from __future__ import annotations

from prometheus_client import Gauge
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.sentinel import Sentinel

from service_kit.settings import KitSettings

SOCKET_TIMEOUT_SECONDS = 0.5

REDIS_POOL_IN_USE = Gauge(
    "redis_pool_connections_in_use",
    "Redis connections checked out of the client's pool (read at scrape time).",
    ["service"],
)
REDIS_POOL_OPEN = Gauge(
    "redis_pool_connections_open",
    "Redis connections the client's pool holds open, idle or in use (read at scrape time).",
    ["service"],
)
REDIS_POOL_MAX = Gauge(
    "redis_pool_connections_max",
    "Redis connections the client's pool may open at most: in use over this is the "
    "pool's saturation.",
    ["service"],
)


def _connections_in_use(pool: ConnectionPool) -> int:
    return len(pool._in_use_connections)


def _connections_open(pool: ConnectionPool) -> int:
    return len(pool._in_use_connections) + len(pool._available_connections)


def export_pool_usage(client: Redis, service: str) -> None:
    """Pool gauges read from ``client``'s pool when Prometheus scrapes.

    redis-py keeps no public count of its pool; the two collections read here
    are the pool's own bookkeeping (the same since redis-py 4). One client per
    process: a later client of the same service replaces the earlier one.
    """
    pool = client.connection_pool
    REDIS_POOL_IN_USE.labels(service).set_function(lambda: _connections_in_use(pool))
    REDIS_POOL_OPEN.labels(service).set_function(lambda: _connections_open(pool))
    REDIS_POOL_MAX.labels(service).set(pool.max_connections)


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
    else:
        client = Redis.from_url(
            settings.redis_url,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
            health_check_interval=30,
        )
    export_pool_usage(client, settings.service_name)
    return client


async def ping_redis(client: Redis) -> None:
    await client.ping()
