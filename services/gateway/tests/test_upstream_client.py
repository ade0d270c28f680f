"""The gateway's own HTTP/1.1 upstream client, against real sockets that misbehave on purpose.

Each test runs a raw asyncio TCP server whose connection handler does exactly
what the test needs (answer, stall, reset, send garbage), so every failure
mode of an upstream is exercised on the wire, not simulated.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gateway_service.proxy.client import (
    ExchangeTimeouts,
    UnsafeRequest,
    UpstreamClient,
    encode_head,
)
from gateway_service.proxy.errors import (
    RequestBodyError,
    UpstreamConnectError,
    UpstreamDisconnected,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from gateway_service.proxy.pool import Origin
from gateway_service.proxy.response import READ_HIGH_WATER, UpstreamResponse

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
TIMEOUTS = ExchangeTimeouts(5.0)


# ---------------------------------------------------------------- a raw upstream


class RawUpstream:
    """A TCP server on a free port; ``handler(reader, writer, n)`` serves its n-th connection."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self._handler = handler
        self._ssl = ssl_context
        self.connections = 0
        self.closed_connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawUpstream:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ssl)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def origin(self) -> Origin:
        return Origin("https" if self._ssl else "http", "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handler(reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            self.closed_connections += 1
            writer.close()


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One request: its request line, headers (lower-cased names) and de-chunked body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    return lines[0], headers, body


def answer(body: bytes = b"ok", *, status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-length: %d\r\n%s\r\n%s" % (status, len(body), extra, body)


async def serve_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
    """Answers every request on the connection with its request line as the body."""
    while True:
        line, _, _ = await read_request(reader)
        writer.write(answer(line))
        await writer.drain()


def new_client(**overrides: Any) -> UpstreamClient:
    options: dict[str, Any] = {
        "pool_size": 64,
        "pool_per_host": 16,
        "connect_timeout": 1.0,
        "keepalive_seconds": 30.0,
    }
    options.update(overrides)
    return UpstreamClient(**options)


async def get(
    client: UpstreamClient, origin: Origin, target: bytes = b"/x", **kwargs: Any
) -> tuple[UpstreamResponse, bytes]:
    response = await client.request(
        client.pool(origin),
        kwargs.pop("method", "GET"),
        target,
        kwargs.pop("headers", []),
        timeouts=kwargs.pop("timeouts", TIMEOUTS),
        **kwargs,
    )
    try:
        body = b""
        while chunk := await response.next_chunk():
            body += chunk
        return response, body
    finally:
        response.release()


async def settle() -> None:
    """Lets connection_lost callbacks and woken waiters run."""
    for _ in range(5):
        await asyncio.sleep(0)


# ------------------------------------------------------------------ keep-alive


async def test_sequential_requests_share_one_kept_alive_connection() -> None:
    async with RawUpstream(serve_forever) as upstream:
        client = new_client()
        for n in range(3):
            response, body = await get(client, upstream.origin(), f"/r{n}".encode())
            assert response.status == 200
            assert body == f"GET /r{n} HTTP/1.1".encode()
        assert upstream.connections == 1
        assert client.pool(upstream.origin()).idle == 1
        client.close()


async def test_the_request_head_carries_host_headers_and_the_base_path_prefix() -> None:
    seen: dict[str, Any] = {}

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        seen["line"], seen["headers"], _body = await read_request(reader)
        writer.write(answer())

    async with RawUpstream(handler) as upstream:
        client = new_client()
        origin = Origin.parse(f"http://127.0.0.1:{upstream.port}/prefix/")
        await get(client, origin, b"/api/v1/x?a=1", headers=[(b"x-request-id", b"r1")])
        assert seen["line"] == b"GET /prefix/api/v1/x?a=1 HTTP/1.1"
        assert seen["headers"][b"host"] == f"127.0.0.1:{upstream.port}".encode()
        assert seen["headers"][b"x-request-id"] == b"r1"
        client.close()


async def test_connection_close_from_the_upstream_is_never_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(answer(extra=b"connection: close\r\n"))
        await writer.drain()

    async with RawUpstream(handler) as upstream:
        client = new_client()
        await get(client, upstream.origin())
        await get(client, upstream.origin())
        assert upstream.connections == 2
        await settle()
        assert client.pool(upstream.origin()).open == 0
        client.close()


async def test_idle_connections_expire_after_the_keepalive_time() -> None:
    async with RawUpstream(serve_forever) as upstream:
        client = new_client(keepalive_seconds=0.2)
        await get(client, upstream.origin())
        await asyncio.sleep(0.35)  # the sweep closes it; the upstream sees the close
        await settle()
        assert client.pool(upstream.origin()).open == 0
        assert upstream.closed_connections == 1
        await get(client, upstream.origin())
        assert upstream.connections == 2
        client.close()


async def test_a_connection_the_upstream_closed_while_idle_is_dropped() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(answer())
        await writer.drain()
        # ... and then close it while it idles in the pool, like a keep-alive timeout.

    async with RawUpstream(handler) as upstream:
        client = new_client()
        await get(client, upstream.origin())
        await asyncio.sleep(0.05)
        await settle()
        assert client.pool(upstream.origin()).idle == 0
        response, _ = await get(client, upstream.origin())
        assert response.status == 200 and upstream.connections == 2
        client.close()


async def test_a_stale_pooled_connection_is_retried_once_for_a_bodyless_get() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(answer(b"first" if n == 1 else b"fresh"))
        await writer.drain()
        if n == 1:
            await read_request(reader)  # the second request meets a socket being closed
            writer.transport.abort()
            return
        await serve_forever(reader, writer, n)

    async with RawUpstream(handler) as upstream:
        client = new_client()
        await get(client, upstream.origin())
        response, body = await get(client, upstream.origin(), retry_if_stale=True)
        assert (response.status, body) == (200, b"fresh")
        assert upstream.connections == 2
        client.close()


async def test_a_stale_connection_is_not_retried_when_the_request_is_not_idempotent() -> None:
    requests: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        line, _, _ = await read_request(reader)
        requests.append(line)
        writer.write(answer())
        await writer.drain()
        line, _, _ = await read_request(reader)
        requests.append(line)
        writer.transport.abort()

    async with RawUpstream(handler) as upstream:
        client = new_client()
        await get(client, upstream.origin())
        with pytest.raises(UpstreamDisconnected) as caught:
            await get(client, upstream.origin(), method="POST", body=b"{}")
        assert not caught.value.response_started
        assert requests == [b"GET /x HTTP/1.1", b"POST /x HTTP/1.1"]  # sent once, never again
        assert upstream.connections == 1
        client.close()


async def test_unsolicited_bytes_on_an_idle_connection_discard_it() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(answer())
        if n == 1:
            writer.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        await serve_forever(reader, writer, n)

    async with RawUpstream(handler) as upstream:
        client = new_client()
        await get(client, upstream.origin())
        await asyncio.sleep(0.05)
        response, body = await get(client, upstream.origin())
        assert (response.status, body) == (200, b"ok")  # answered on a new connection
        assert upstream.connections == 2
        client.close()


# -------------------------------------------------------------- response framing


async def test_chunked_and_close_delimited_bodies_are_read_whole() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        if n == 1:
            writer.write(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"
            )
            await serve_forever(reader, writer, n)
        else:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/csv\r\n\r\nuntil the end")
            await writer.drain()

    async with RawUpstream(handler) as upstream:
        client = new_client()
        response, body = await get(client, upstream.origin())
        assert (body, response.content_length) == (b"hello world", None)
        client.pool(upstream.origin()).discard_oldest_idle()
        response, body = await get(client, upstream.origin())
        assert body == b"until the end" and response.close_delimited
        client.close()


async def test_informational_answers_are_skipped_for_the_final_one() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n")
        writer.write(answer(b"final", status=b"201 Created", extra=b"x-final: 1\r\n"))
        await serve_forever(reader, writer, 0)

    async with RawUpstream(handler) as upstream:
        client = new_client()
        response, body = await get(client, upstream.origin())
        assert (response.status, body) == (201, b"final")
        assert (b"x-final", b"1") in response.headers
        assert all(name != b"link" for name, _ in response.headers)
        assert client.pool(upstream.origin()).idle == 1
        client.close()


async def test_head_answers_end_at_the_headers_and_204_keeps_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            line, _, _ = await read_request(reader)
            if line.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 12345\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()

    async with RawUpstream(handler) as upstream:
        client = new_client()
        response, body = await get(client, upstream.origin(), method="HEAD")
        assert (response.status, body, response.content_length) == (200, b"", 12345)
        await settle()
        assert client.pool(upstream.origin()).open == 0  # its parser expected a body: dropped
        response, body = await get(client, upstream.origin(), method="DELETE")
        assert (response.status, body) == (204, b"")
        assert client.pool(upstream.origin()).idle == 1
        client.close()


async def test_malformed_answers_are_protocol_errors() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: nope\r\n\r\nxx")
        await writer.drain()
        await asyncio.sleep(1)

    async with RawUpstream(handler) as upstream:
        client = new_client()
        with pytest.raises(UpstreamProtocolError):
            await get(client, upstream.origin())
        await settle()
        assert client.pool(upstream.origin()).open == 0
        client.close()


async def test_a_reset_in_the_middle_of_the_body_cuts_the_response() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 1000)
        await writer.drain()
        writer.transport.abort()

    async with RawUpstream(handler) as upstream:
        client = new_client()
        with pytest.raises(UpstreamDisconnected) as caught:
            await get(client, upstream.origin())
        assert caught.value.response_started
        client.close()


async def test_a_closed_fresh_connection_is_reported_before_any_answer() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.transport.abort()

    async with RawUpstream(handler) as upstream:
        client = new_client()
        with pytest.raises(UpstreamDisconnected) as caught:
            await get(client, upstream.origin(), retry_if_stale=True)
        assert not caught.value.response_started
        assert upstream.connections == 1  # a fresh connection failing is not retried
        client.close()


# -------------------------------------------------------------------- timeouts


async def test_a_silent_upstream_times_out_at_the_budget() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        await asyncio.sleep(30)

    async with RawUpstream(handler) as upstream:
        client = new_client()
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await get(client, upstream.origin(), timeouts=ExchangeTimeouts(0.3))
        assert 0.25 < time.monotonic() - started < 2.0
        await settle()
        assert client.pool(upstream.origin()).open == 0
        client.close()


async def test_the_idle_read_limit_ends_a_download_that_stalls() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(4):  # steady data: each gap is under the idle limit
            writer.write(b"3\r\nabc\r\n")
            await writer.drain()
            await asyncio.sleep(0.15)
        await asyncio.sleep(30)

    async with RawUpstream(handler) as upstream:
        client = new_client()
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await get(client, upstream.origin(), timeouts=ExchangeTimeouts(20, idle_read=0.4))
        elapsed = time.monotonic() - started
        assert 0.75 < elapsed < 3.0  # data until ~0.45 s, then 0.4 s of silence
        client.close()


async def test_until_head_budgets_end_with_the_head_and_the_body_outlives_them() -> None:
    read_first = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\none\r\n")
        await writer.drain()
        await read_first.wait()
        await asyncio.sleep(0.6)  # silent past both budgets (0.2 s)
        writer.write(b"3\r\ntwo\r\n0\r\n\r\n")
        await writer.drain()

    async with RawUpstream(handler) as upstream:
        client = new_client()
        response = await client.request(
            client.pool(upstream.origin()),
            "GET",
            b"/stream",
            [],
            timeouts=ExchangeTimeouts(0.2, idle_read=0.2, until_head=True),
        )
        try:
            assert await response.next_chunk() == b"one"
            read_first.set()
            assert await response.next_chunk() == b"two"
            assert await response.next_chunk() == b""
        finally:
            response.release()
        client.close()


async def test_until_head_still_bounds_the_wait_for_the_head() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        await asyncio.sleep(30)

    async with RawUpstream(handler) as upstream:
        client = new_client()
        with pytest.raises(UpstreamTimeout):
            await get(client, upstream.origin(), timeouts=ExchangeTimeouts(0.3, until_head=True))
        await settle()
        assert client.pool(upstream.origin()).open == 0
        client.close()


async def test_connecting_to_a_closed_port_is_a_connect_error() -> None:
    client = new_client()
    async with RawUpstream(serve_forever) as upstream:
        origin = upstream.origin()
    with pytest.raises(UpstreamConnectError):
        await get(client, origin)
    assert client.pool(origin).open == 0
    client.close()


# ------------------------------------------------------------------ backpressure


async def test_a_slow_reader_pauses_the_upstream_instead_of_buffering_its_body() -> None:
    total = 16 * 1024 * 1024

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % total)
        block = b"x" * 65536
        for _ in range(total // len(block)):
            writer.write(block)
            await writer.drain()

    async with RawUpstream(handler) as upstream:
        client = new_client()
        response = await client.request(
            client.pool(upstream.origin()), "GET", b"/big", [], timeouts=TIMEOUTS
        )
        received = most_buffered = 0
        try:
            while chunk := await response.next_chunk():
                received += len(chunk)
                most_buffered = max(most_buffered, response._buffered)
                if received < 4 * 1024 * 1024:
                    await asyncio.sleep(0.002)  # a client on a slow link
        finally:
            response.release()
        assert received == total
        print(f"most buffered while paced: {most_buffered} bytes")
        assert most_buffered <= READ_HIGH_WATER + 256 * 1024
        client.close()


async def test_streamed_bodies_arrive_exactly_with_either_framing() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        while True:
            _, headers, body = await read_request(reader)
            framing = b"chunked" if b"transfer-encoding" in headers else b"length"
            await asyncio.sleep(0.01)  # reads slowly: the client must wait for the socket
            writer.write(answer(framing + b" %d" % len(body)))
            await writer.drain()

    async def chunks(size: int) -> AsyncIterator[bytes]:
        block = b"y" * 65536
        for offset in range(0, size, len(block)):
            yield block[: size - offset]

    size = 5 * 1024 * 1024 + 7
    async with RawUpstream(handler) as upstream:
        client = new_client()
        _, body = await get(client, upstream.origin(), method="POST", body=chunks(size))
        assert body == b"chunked %d" % size
        _, body = await get(
            client, upstream.origin(), method="POST", body=chunks(size), content_length=size
        )
        assert body == b"length %d" % size
        assert upstream.connections == 1  # both completed cleanly, so the socket was reused
        client.close()


async def test_a_body_that_fails_fails_the_exchange_and_closes_the_connection() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"part"
        raise OSError("client went away")

    async with RawUpstream(serve_forever) as upstream:
        client = new_client()
        with pytest.raises(RequestBodyError) as caught:
            await get(client, upstream.origin(), method="POST", body=chunks())
        assert isinstance(caught.value.__cause__, OSError)
        with pytest.raises(RequestBodyError):
            await get(client, upstream.origin(), method="POST", body=chunks(), content_length=99)
        await settle()
        assert client.pool(upstream.origin()).open == 0
        client.close()


async def test_an_early_answer_during_an_upload_ends_it_without_reusing_the_socket() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(1000)
        writer.write(answer(b"too big", status=b"413 Payload Too Large"))
        await writer.drain()
        await asyncio.sleep(5)

    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while True:
            sent += 65536
            yield b"z" * 65536

    async with RawUpstream(handler) as upstream:
        client = new_client()
        response, body = await get(client, upstream.origin(), method="POST", body=endless())
        assert (response.status, body) == (413, b"too big")
        await settle()
        assert client.pool(upstream.origin()).open == 0
        stopped_at = sent
        await asyncio.sleep(0.05)
        assert sent == stopped_at  # the writer was stopped
        client.close()


# ------------------------------------------------------------------------ pools


async def test_the_per_host_limit_queues_callers_on_one_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while True:
            await read_request(reader)
            await asyncio.sleep(0.02)
            writer.write(answer())
            await writer.drain()

    async with RawUpstream(handler) as upstream:
        client = new_client(pool_per_host=1)
        results = await asyncio.gather(*(get(client, upstream.origin()) for _ in range(5)))
        assert [r.status for r, _ in results] == [200] * 5
        assert upstream.connections == 1
        client.close()


async def test_waiting_for_a_busy_pool_ends_at_the_connect_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        await asyncio.sleep(2)
        writer.write(answer())
        await writer.drain()

    async with RawUpstream(handler) as upstream:
        client = new_client(pool_per_host=1, connect_timeout=0.2)
        slow = asyncio.create_task(get(client, upstream.origin()))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await get(client, upstream.origin())
        assert time.monotonic() - started < 1.0
        slow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await slow
        await settle()
        assert client.pool(upstream.origin()).open == 0  # the cancelled exchange freed its slot
        client.close()


async def test_the_shared_budget_takes_an_idle_slot_from_another_pool() -> None:
    async with RawUpstream(serve_forever) as first, RawUpstream(serve_forever) as second:
        client = new_client(pool_size=1)
        await get(client, first.origin())
        assert client.pool(first.origin()).idle == 1
        response, _ = await get(client, second.origin())
        assert response.status == 200
        assert client.pool(first.origin()).open == 0
        assert client.pool(second.origin()).idle == 1
        client.close()


async def test_a_cancelled_caller_frees_its_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        await read_request(reader)
        await asyncio.sleep(30)

    async with RawUpstream(handler) as upstream:
        client = new_client()
        task = asyncio.create_task(get(client, upstream.origin()))
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await settle()
        pool = client.pool(upstream.origin())
        assert (pool.open, pool.in_use) == (0, 0)
        client.close()


# --------------------------------------------------------------- heads and TLS


def test_heads_with_a_line_break_or_nul_inside_are_refused() -> None:
    host = b"up:8002"
    assert encode_head("GET", b"/a?b=1", host, [(b"x-a", b"1")], b"").startswith(b"GET /a?b=1 ")
    for target in (b"/a b", b"/a\r\nx-evil: 1", b"/a\x00"):
        with pytest.raises(UnsafeRequest):
            encode_head("GET", target, host, [], b"")
    for value in (b"1\r\nx-evil: 1", b"1\nx", b"1\rx", b"a\x00b"):
        with pytest.raises(UnsafeRequest):
            encode_head("GET", b"/a", host, [(b"x-a", value)], b"")


def test_origins_are_parsed_strictly() -> None:
    assert Origin.parse("http://auth:8001").host_header == b"auth:8001"
    assert Origin.parse("https://auth.example.edu/").host_header == b"auth.example.edu"
    assert Origin.parse("http://[::1]:8001/base").path_prefix == b"/base"
    assert Origin.parse("http://[::1]:8001/base").host_header == b"[::1]:8001"
    for bad in ("ftp://x", "http://", "http://x?y=1", "http://u:p@x", "auth:8001"):
        with pytest.raises(ValueError):
            Origin.parse(bad)


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_upstreams_are_verified() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = _self_signed(Path(tmp))
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        async with RawUpstream(serve_forever, ssl_context=server_ctx) as upstream:
            trusting = new_client(ssl_context=ssl.create_default_context(cafile=str(cert)))
            response, body = await get(trusting, upstream.origin())
            assert (response.status, body) == (200, b"GET /x HTTP/1.1")
            trusting.close()
            default = new_client()  # the system trust store does not know this certificate
            with pytest.raises(UpstreamConnectError):
                await get(default, upstream.origin())
            default.close()


async def test_fetch_reads_a_small_document() -> None:
    async with RawUpstream(serve_forever) as upstream:
        client = new_client()
        status, body = await client.fetch(
            f"http://127.0.0.1:{upstream.port}/openapi.json", timeout_seconds=2
        )
        assert (status, body) == (200, b"GET /openapi.json HTTP/1.1")
        client.close()
