"""Keep-alive connection pools, one per upstream origin, under one shared budget.

A pool hands out its most recently used idle connection (warm, least likely
to have been closed by the upstream), opens a new one while it is under its
own limit (``UPSTREAM_POOL_PER_HOST``) and the shared budget
(``UPSTREAM_POOL_SIZE``) allows, and otherwise makes the caller wait, at most
the connect timeout, for a connection to be released or a slot to free up.

Idle connections are closed after ``UPSTREAM_KEEPALIVE_SECONDS``, below the
upstreams' own keep-alive, so the gateway does not reuse a socket the upstream
is about to close. Accounting is exact: a connection holds one slot of its
pool and of the budget from the moment its connect starts until it is
discarded or its socket is gone, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway_service.proxy.connection import UpstreamConnection
from gateway_service.proxy.errors import UpstreamConnectError, UpstreamTimeout

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an upstream listens, and the path prefix its base URL carries."""

    scheme: str
    host: str
    port: int
    path_prefix: bytes = b""

    @classmethod
    def parse(cls, base_url: str) -> Origin:
        """``http(s)://host[:port][/prefix]``; anything else is a configuration error."""
        parts = urlsplit(base_url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"{base_url!r} is not an http:// or https:// URL with a host")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError(f"{base_url!r} must not carry a query, fragment or credentials")
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/").encode("ascii"))

    @property
    def host_header(self) -> bytes:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != _DEFAULT_PORTS[self.scheme]:
            host = f"{host}:{self.port}"
        return host.encode("idna")

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


class ConnectionBudget:
    """The most connections open to all upstreams together."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.waiters: deque[asyncio.Future[UpstreamConnection | None]] = deque()
        self.pools: list[ConnectionPool] = []

    def take(self) -> bool:
        """A slot for a new connection, closing another pool's idle one if need be."""
        if self.open >= self.limit:
            for pool in self.pools:
                if pool.discard_oldest_idle():
                    break
            else:
                return False
        self.open += 1
        return True

    def give_back(self) -> None:
        self.open -= 1
        _wake_first(self.waiters, None)


class ConnectionPool:
    """The connections to one origin."""

    def __init__(
        self,
        origin: Origin,
        budget: ConnectionBudget,
        *,
        limit: int,
        connect_timeout: float,
        keepalive_seconds: float,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self.origin = origin
        self.host_header = origin.host_header
        self.loop = asyncio.get_running_loop()
        self._budget = budget
        self._limit = limit or 1 << 30
        self._connect_timeout = connect_timeout
        self._keepalive = keepalive_seconds
        self._ssl = ssl_context if origin.scheme == "https" else None
        self._idle: deque[UpstreamConnection] = deque()  # oldest left, newest right
        self._waiters: deque[asyncio.Future[UpstreamConnection | None]] = deque()
        self._holding_slot: set[UpstreamConnection] = set()
        self._connecting = 0
        self._sweep: asyncio.TimerHandle | None = None
        self._closed = False
        self.in_use = 0
        budget.pools.append(self)

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def open(self) -> int:
        return len(self._holding_slot)

    async def acquire(self, deadline: float) -> UpstreamConnection:
        """A connection ready for an exchange; waits at most until ``deadline`` (loop time)."""
        conn = self._take_idle()
        if conn is not None:
            return conn
        deadline = min(deadline, self.loop.time() + self._connect_timeout)
        while True:
            conn = self._take_idle()
            if conn is not None:
                return conn
            if self._closed:
                raise UpstreamConnectError(f"the pool of {self._name} is closed")
            if self.open + self._connecting < self._limit:
                if self._budget.take():
                    return await self._connect(deadline)
                waiters = self._budget.waiters
            else:
                waiters = self._waiters
            conn = await self._wait(waiters, deadline)
            if conn is not None:
                self.in_use += 1
                return conn

    def discard_oldest_idle(self) -> bool:
        """Closes the idle connection unused the longest, freeing its slot at once."""
        if not self._idle:
            return False
        self._discard(self._idle.popleft())
        return True

    def close(self) -> None:
        self._closed = True
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        while self._idle:
            self._discard(self._idle.pop())
        for waiters in (self._waiters, self._budget.waiters):
            while _wake_first(waiters, None):
                pass

    # -- internals

    @property
    def _name(self) -> str:
        return f"{self.origin.host}:{self.origin.port}"

    def _take_idle(self) -> UpstreamConnection | None:
        idle = self._idle
        if not idle:
            return None
        oldest_allowed = self.loop.time() - self._keepalive
        while idle:
            conn = idle.pop()
            if conn.broken:
                continue
            if conn.idle_since <= oldest_allowed:
                # The newest idle one has expired, so all older ones have too.
                self._discard(conn)
                while idle:
                    self._discard(idle.pop())
                return None
            self.in_use += 1
            return conn
        return None

    async def _connect(self, deadline: float) -> UpstreamConnection:
        """A new connection, in the budget slot the caller has taken."""
        loop = self.loop

        def protocol() -> UpstreamConnection:
            return UpstreamConnection(loop, self._on_finished, self._on_closed)

        origin = self.origin
        self._connecting += 1
        try:
            async with asyncio.timeout_at(deadline):
                _, conn = await loop.create_connection(
                    protocol,
                    origin.host,
                    origin.port,
                    ssl=self._ssl,
                    server_hostname=origin.host if self._ssl is not None else None,
                )
            if conn.closed:
                raise UpstreamConnectError(f"{self._name} closed the connection at once")
        except TimeoutError:
            self._connect_failed()
            raise UpstreamTimeout(f"connecting to {self._name} timed out") from None
        except OSError as exc:
            self._connect_failed()
            raise UpstreamConnectError(f"cannot connect to {self._name}: {exc}") from exc
        except BaseException:
            self._connect_failed()
            raise
        finally:
            self._connecting -= 1
        self._holding_slot.add(conn)
        self.in_use += 1
        return conn

    async def _wait(
        self, waiters: deque[asyncio.Future[UpstreamConnection | None]], deadline: float
    ) -> UpstreamConnection | None:
        """A connection handed over by a release, or None when a slot may have freed up."""
        waiter: asyncio.Future[UpstreamConnection | None] = self.loop.create_future()
        waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except TimeoutError:
            raise UpstreamTimeout(f"no connection to {self._name} became free in time") from None
        except BaseException:
            # Cancelled just after a release handed us a connection: give it back.
            if waiter.done() and not waiter.cancelled():
                handed = waiter.result()
                if handed is not None:
                    self.in_use += 1
                    self._on_finished(handed, True)
            raise
        finally:
            if not waiter.done():
                waiter.cancel()

    def _connect_failed(self) -> None:
        self._budget.give_back()
        _wake_first(self._waiters, None)

    def _on_finished(self, conn: UpstreamConnection, reusable: bool) -> None:
        self.in_use -= 1
        if not reusable or conn.broken:
            self._discard(conn)
            return
        if self._closed:
            self._discard(conn)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if self._budget.waiters:
            # Another pool is starved for a slot: this connection's slot serves it better.
            self._discard(conn)
            return
        conn.idle_since = self.loop.time()
        self._idle.append(conn)
        if self._sweep is None:
            self._sweep = self.loop.call_at(conn.idle_since + self._keepalive, self._sweep_idle)

    def _sweep_idle(self) -> None:
        self._sweep = None
        oldest_allowed = self.loop.time() - self._keepalive
        idle = self._idle
        while idle and idle[0].idle_since <= oldest_allowed:
            self._discard(idle.popleft())
        if idle:
            self._sweep = self.loop.call_at(idle[0].idle_since + self._keepalive, self._sweep_idle)

    def _on_closed(self, conn: UpstreamConnection) -> None:
        if conn in self._holding_slot:
            with contextlib.suppress(ValueError):
                self._idle.remove(conn)  # closed by the upstream while idle
        self._free_slot(conn)

    def _discard(self, conn: UpstreamConnection) -> None:
        conn.close()
        self._free_slot(conn)

    def _free_slot(self, conn: UpstreamConnection) -> None:
        if conn in self._holding_slot:
            self._holding_slot.remove(conn)
            self._budget.give_back()
            _wake_first(self._waiters, None)


def _wake_first(waiters: deque[asyncio.Future[UpstreamConnection | None]], value: None) -> bool:
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(value)
            return True
    return False
