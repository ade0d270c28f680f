"""The notifier's event stream (API.md Notifications) through the gateway.

A fake notifier on a raw socket in the test's own event loop serves
``text/event-stream``; the test and the fake take turns through asyncio events,
so "the client got the first event before the upstream sent the second" is a
fact of the order of events, never a measured time. The gateway's upstream
budgets are set to 0.3 s, so a stream cut by them would end long before the
fake's pauses do.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest
from gateway_fakes import FakeUpstreams, GatewayProcess, SigningKey, free_port
from gateway_service.proxy.upstream import UpstreamProxy
from gateway_service.routing import match_route
from gateway_service.settings import GatewaySettings
from service_kit.termination import on_termination
from starlette.types import Message

STREAM = "/api/v1/notifications/stream"
BUDGET = 0.3
# Only a guard against a hung test: every wait below is for something that
# happens at once when the gateway works.
GUARD = 15.0

Script = Callable[["SseStream"], Awaitable[None]]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def event(event_id: int, name: str, data: str) -> bytes:
    return f"id: {event_id}\nevent: {name}\ndata: {data}\n\n".encode()


class SseStream:
    """One stream the fake notifier serves: the request it got and a way to write events."""

    def __init__(self, headers: dict[bytes, bytes], writer: asyncio.StreamWriter) -> None:
        self.headers = headers
        self._writer = writer

    async def send(self, data: bytes) -> None:
        self._writer.write(chunk(data))
        await self._writer.drain()


class FakeNotifier:
    """Serves an event stream on every connection, as ``script`` says, and counts them.

    A stream stays open after its script ends until the other side closes the
    connection: ``open_streams`` is how many the gateway has not closed yet.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.script: Script = _send_one
        self.answers = True
        # As the notifier answers (api/stream.py).
        self.head_extra = b"cache-control: no-cache\r\nx-accel-buffering: no\r\n"
        self.streams: list[SseStream] = []
        self.opened = 0
        self.closed = 0
        self.closed_one = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def open_streams(self) -> int:
        return self.opened - self.closed

    async def __aenter__(self) -> FakeNotifier:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            headers = {}
            for line in head[:-4].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            self.opened += 1
            if not self.answers:
                await reader.read()  # holds the request unanswered until the gateway leaves
                raise ConnectionResetError
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
                + self.head_extra
                + b"transfer-encoding: chunked\r\n\r\n"
            )
            stream = SseStream(headers, writer)
            self.streams.append(stream)
            await self.script(stream)
            # The stream stays open until the gateway closes the connection.
            while await reader.read(65536):
                pass
            self.closed += 1
            self.closed_one.set()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed += 1
            self.closed_one.set()
        finally:
            self._tasks.discard(task)
            writer.close()

    async def all_closed(self) -> None:
        async with asyncio.timeout(GUARD):
            while self.open_streams:
                self.closed_one.clear()
                await self.closed_one.wait()


async def _send_one(stream: SseStream) -> None:
    await stream.send(event(5, "notification", "{}"))


async def read_event(lines: AsyncIterator[str]) -> dict[str, str]:
    """The next event (its fields), skipping comment lines."""
    fields: dict[str, str] = {}
    async with asyncio.timeout(GUARD):
        async for line in lines:
            if not line:
                if fields:
                    return fields
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
    raise AssertionError(f"the stream ended inside an event: {fields}")


# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def notifier_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def stream_gateway(
    upstreams: FakeUpstreams, signing_key: SigningKey, notifier_port: int
) -> Iterator[GatewayProcess]:
    """Upstream budgets of 0.3 s; 3 requests per user and minute, counted exactly."""
    process = GatewayProcess(upstreams, **_stream_env(notifier_port)).start()
    yield process
    process.stop()


def _stream_env(notifier_port: int) -> dict[str, str]:
    return {
        "NOTIFIER_URL": f"http://127.0.0.1:{notifier_port}",
        "UPSTREAM_TIMEOUT_SECONDS": str(BUDGET),
        "UPSTREAM_IDLE_READ_TIMEOUT_SECONDS": str(BUDGET),
        "UPSTREAM_TRANSFER_TIMEOUT_SECONDS": str(BUDGET),
        "RATE_LIMIT_PER_MINUTE": "3",
        "RATE_LIMIT_SYNC_MS": "0",
    }


@pytest.fixture
async def notifier(notifier_port: int) -> AsyncIterator[FakeNotifier]:
    async with FakeNotifier(notifier_port) as fake:
        yield fake


@pytest.fixture
async def http(stream_gateway: GatewayProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stream_gateway.url, timeout=GUARD) as client:
        yield client


# ------------------------------------------------------------------------ tests


async def test_each_event_reaches_the_client_at_once_and_the_stream_outlives_the_budgets(
    notifier: FakeNotifier, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    first_read = asyncio.Event()
    second_read = asyncio.Event()

    async def script(stream: SseStream) -> None:
        await stream.send(event(7, "notification", '{"id":"n7"}'))
        # Sent only once the client has the first one: a gateway holding chunks
        # back would never let it get there.
        await first_read.wait()
        # Silent for well past every upstream budget of the gateway.
        await asyncio.sleep(BUDGET * 4)
        await stream.send(b": keep-alive\n\n")
        await stream.send(event(8, "unread_count", '{"unread_count":2}'))
        await second_read.wait()

    notifier.script = script
    headers = {**auth, "Accept": "text/event-stream", "Accept-Encoding": "gzip"}
    async with http.stream("GET", STREAM, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers.get_list("x-accel-buffering") == ["no"]
        assert "content-encoding" not in response.headers
        assert "content-length" not in response.headers
        lines = response.aiter_lines()
        first = await read_event(lines)
        assert first == {"id": "7", "event": "notification", "data": '{"id":"n7"}'}
        first_read.set()
        second = await read_event(lines)
        assert second == {"id": "8", "event": "unread_count", "data": '{"unread_count":2}'}
        second_read.set()
    await notifier.all_closed()

    (stream,) = notifier.streams
    assert stream.headers[b"accept"] == b"text/event-stream"
    assert stream.headers[b"accept-encoding"] == b"identity"
    assert stream.headers[b"authorization"] == auth["Authorization"].encode()


async def test_the_gateway_marks_a_stream_uncacheable_and_unbuffered_itself(
    notifier: FakeNotifier, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    notifier.head_extra = b""
    async with http.stream("GET", STREAM, headers=auth) as response:
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        assert (await read_event(response.aiter_lines()))["id"] == "5"


async def test_last_event_id_reaches_the_notifier(
    notifier: FakeNotifier, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    async def script(stream: SseStream) -> None:
        resumed_after = stream.headers[b"last-event-id"].decode()
        await stream.send(event(int(resumed_after) + 1, "notification", "{}"))

    notifier.script = script
    headers = {**auth, "Accept": "text/event-stream", "Last-Event-ID": "41"}
    async with http.stream("GET", STREAM, headers=headers) as response:
        assert (await read_event(response.aiter_lines()))["id"] == "42"
    assert notifier.streams[0].headers[b"last-event-id"] == b"41"


async def test_a_client_leaving_closes_the_upstream_stream(
    notifier: FakeNotifier, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for _ in range(2):
        async with http.stream("GET", STREAM, headers=auth) as response:
            await read_event(response.aiter_lines())
            assert notifier.open_streams == 1
        # Leaving mid-stream closes the client's connection; the notifier is
        # silent meanwhile, so only the gateway noticing can close its side.
        await notifier.all_closed()
    assert (notifier.opened, notifier.closed) == (2, 2)
    assert (await http.get("/api/v1/exams", headers=auth)).status_code == 200


async def test_a_stream_needs_a_valid_token_before_the_notifier_is_called(
    notifier: FakeNotifier, http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    missing = await http.get(STREAM, headers={"Accept": "text/event-stream"})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "AUTH_TOKEN_MISSING"
    expired = signing_key.token(exp=1_000_000_000, iat=999_999_000)
    refused = await http.get(STREAM, headers={"Authorization": f"Bearer {expired}"})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert notifier.opened == 0


async def test_opening_streams_counts_against_the_per_user_rate_limit(
    notifier: FakeNotifier, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    if 60 - time.time() % 60 < 3:
        await asyncio.sleep(3)  # do not straddle a window boundary of the limit
    for _ in range(3):  # the test gateway allows 3 requests per user and minute
        async with http.stream("GET", STREAM, headers=auth) as response:
            assert response.status_code == 200
            await anext(response.aiter_bytes())
    refused = await http.get(STREAM, headers=auth)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert "retry-after" in refused.headers
    await notifier.all_closed()
    assert notifier.opened == 3


async def test_a_notifier_that_never_answers_gives_503_at_the_head_budget(
    notifier: FakeNotifier, http: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    notifier.answers = False
    response = await http.get(STREAM, headers={**auth, "Accept": "text/event-stream"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"
    await notifier.all_closed()
    assert (notifier.opened, notifier.closed) == (1, 1)


async def test_notifier_down_gives_503_in_the_envelope(
    faulty_gateway: GatewayProcess, auth: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=faulty_gateway.url, timeout=GUARD) as client:
        response = await client.get(
            STREAM, headers={**auth, "Accept": "text/event-stream", "X-Request-ID": "sse-down"}
        )
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/json")
    assert int(response.headers["retry-after"]) >= 1
    assert response.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert response.json()["error"]["request_id"] == "sse-down"


async def test_stopping_the_gateway_ends_its_open_streams(
    upstreams: FakeUpstreams,
    signing_key: SigningKey,
    notifier: FakeNotifier,
    notifier_port: int,
    auth: dict[str, str],
) -> None:
    """SIGTERM ends each stream completely (the client reconnects elsewhere) and closes
    its upstream, instead of uvicorn waiting out its graceful timeout and cutting it."""
    gateway = await asyncio.to_thread(GatewayProcess(upstreams, **_stream_env(notifier_port)).start)
    try:
        async with (
            httpx.AsyncClient(base_url=gateway.url, timeout=GUARD) as client,
            client.stream("GET", STREAM, headers=auth) as response,
        ):
            lines = response.aiter_lines()
            assert await read_event(lines) == {"data": "{}", "event": "notification", "id": "5"}
            assert gateway.proc is not None
            gateway.proc.send_signal(signal.SIGTERM)
            # A clean end of the body: a cut one would raise RemoteProtocolError here.
            rest = [line async for line in lines]
            assert rest == []
        await notifier.all_closed()
        assert (notifier.opened, notifier.closed) == (1, 1)
        await asyncio.to_thread(gateway.proc.wait, GUARD)
    finally:
        with contextlib.suppress(Exception):
            gateway.stop()


# ------------------------------------------------------------------- units


async def test_the_stop_signal_runs_the_step_and_then_the_handler_it_found() -> None:
    seen: list[str] = []
    stepped = asyncio.Event()

    def step() -> None:
        seen.append("step")
        stepped.set()

    def server_handler(sig: int, frame: object) -> None:
        seen.append(f"server {sig}")

    before = signal.signal(signal.SIGTERM, server_handler)
    try:
        with on_termination(step):
            signal.raise_signal(signal.SIGTERM)
            async with asyncio.timeout(GUARD):
                await stepped.wait()
        assert seen == [f"server {int(signal.SIGTERM)}", "step"]
        assert signal.getsignal(signal.SIGTERM) is server_handler
    finally:
        signal.signal(signal.SIGTERM, before)


async def test_a_stream_asked_for_after_end_streams_is_503_without_an_upstream_call() -> None:
    proxy = UpstreamProxy(GatewaySettings(_env_file=None))
    proxy.end_streams()  # before start(): reaching for the client would raise
    route = match_route(STREAM)
    assert route is not None and route.stream
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        raise AssertionError("nothing to read")

    scope = {"type": "http", "method": "GET", "path": STREAM, "headers": [], "query_string": b""}
    await proxy.forward(scope, receive, send, route)
    assert sent[0]["status"] == 503
    assert (b"retry-after", b"5") in sent[0]["headers"]
    assert b"UPSTREAM_UNAVAILABLE" in sent[1]["body"]
