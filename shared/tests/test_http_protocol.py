"""The kit's HTTP server refuses oversized and malformed requests while parsing, in the envelope.

A kit-built app (``http_limits_app``) is served by ``service_kit.serve.serve``
in a process of its own, exactly as a service's ``serve`` command runs it, and
spoken to over raw sockets, so nothing on the client side normalises or
refuses the hostile bytes first.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import pytest
from service_kit.http_protocol import LINGER_BYTES, HttpLimits
from service_kit.settings import KitSettings

MIB = 1024 * 1024
TESTS = Path(__file__).resolve().parent
LIMITS = HttpLimits(
    max_url_bytes=8 * 1024,
    max_header_bytes=16 * 1024,
    max_header_total_bytes=64 * 1024,
    max_header_count=100,
)
_SERVE = """
import json, sys
from service_kit.http_protocol import HttpLimits
from service_kit.serve import serve
serve("http_limits_app:create_app", host="127.0.0.1", port=int(sys.argv[1]),
      limits=HttpLimits(**json.loads(sys.argv[2])))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``serve()`` of the kit in its own process, on a free port."""

    def __init__(self, limits: HttpLimits) -> None:
        self.port = free_port()
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the process
            prefix="kit-http-", suffix=".log", delete=False
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE, str(self.port), json.dumps(asdict(limits))],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=0.5).is_success:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")[-4000:]

    def peak_rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
        raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    running = Server(LIMITS)
    yield running
    running.stop()


@pytest.fixture
def fresh_server() -> Iterator[Callable[[], Server]]:
    started: list[Server] = []

    def start() -> Server:
        started.append(Server(LIMITS))
        return started[-1]

    yield start
    for running in started:
        running.stop()


# ------------------------------------------------------------------ raw HTTP


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def envelope(self, code: str) -> dict[str, str]:
        """Asserts the answer is the error envelope of ``code``; returns its ``error``."""
        assert self.headers["content-type"] == "application/json"
        assert self.headers["x-content-type-options"] == "nosniff"
        error: dict[str, str] = json.loads(self.body)["error"]
        assert error["code"] == code, error
        assert error["message"]
        assert error["request_id"] == self.headers["x-request-id"]
        return error


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_answer(sock: socket.socket) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed in the middle of the body"
        body += chunk
    assert len(body) == length, "more bytes than one answer"
    return Answer(int(status_line.split()[1]), headers, body)


def assert_closed(sock: socket.socket) -> None:
    """The server ends the connection (it may first drop what it still receives)."""
    sock.settimeout(5)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass


def exchange(server: Server, data: bytes) -> Answer:
    with connect(server) as sock:
        sock.sendall(data)
        return read_answer(sock)


def refused(server: Server, data: bytes) -> Answer:
    """Sends ``data``, reads the answer and checks the server closes the connection."""
    with connect(server) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        answer = read_answer(sock)
        assert answer.headers["connection"] == "close"
        assert_closed(sock)
        return answer


def get(target: str = "/items", headers: list[tuple[str, str]] = ()) -> bytes:  # type: ignore[assignment]
    lines = [f"GET {target} HTTP/1.1", "Host: kit", *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def sized_headers(total: int, count: int) -> list[tuple[str, str]]:
    """``count`` headers whose names and values add up to ``total`` bytes with Host."""
    budget = total - len("Host") - len("kit")
    names = [f"X-H{i:04d}" for i in range(count - 1)]
    room = budget - sum(len(n) for n in names)
    values = [room // len(names)] * len(names)
    values[-1] += room - sum(values)
    return [(n, "v" * size) for n, size in zip(names, values, strict=True)]


# --------------------------------------------------------------- the limits


def test_the_defaults_are_the_documented_limits() -> None:
    assert HttpLimits.from_settings(KitSettings()) == LIMITS


def test_an_oversized_header_is_431_in_the_envelope_and_the_connection_closes(
    server: Server,
) -> None:
    answer = refused(server, get(headers=[("X-Big", "a" * (LIMITS.max_header_bytes + 1))]))
    assert answer.status == 431
    error = answer.envelope("HEADER_FIELDS_TOO_LARGE")
    assert str(LIMITS.max_header_bytes) in error["message"]


def test_too_many_headers_are_431(server: Server) -> None:
    headers = [(f"X-H{i}", "1") for i in range(LIMITS.max_header_count)]  # + Host: one too many
    answer = refused(server, get(headers=headers))
    assert answer.status == 431
    assert "header fields" in answer.envelope("HEADER_FIELDS_TOO_LARGE")["message"]


def test_headers_over_the_total_are_431_though_each_is_allowed(server: Server) -> None:
    headers = sized_headers(LIMITS.max_header_total_bytes + 1, 10)
    assert all(len(n) + len(v) <= LIMITS.max_header_bytes for n, v in headers)
    answer = refused(server, get(headers=headers))
    assert answer.status == 431
    assert "in all" in answer.envelope("HEADER_FIELDS_TOO_LARGE")["message"]


def test_an_oversized_url_is_414_in_the_envelope(server: Server) -> None:
    target = "/items?q=" + "a" * (LIMITS.max_url_bytes - len("/items?q=") + 1)
    answer = refused(server, get(target))
    assert answer.status == 414
    answer.envelope("URI_TOO_LONG")


def test_requests_at_every_limit_are_served(server: Server) -> None:
    target = "/items?q=" + "a" * (LIMITS.max_url_bytes - len("/items?q="))
    assert exchange(server, get(target)).status == 200
    one_big = [("X-Big", "a" * (LIMITS.max_header_bytes - len("X-Big")))]
    assert exchange(server, get(headers=one_big)).status == 200
    at_total = sized_headers(LIMITS.max_header_total_bytes, LIMITS.max_header_count)
    answer = exchange(server, get(headers=at_total))
    assert answer.status == 200, answer.body
    assert json.loads(answer.body)["header_count"] == LIMITS.max_header_count


def test_the_counts_start_again_for_each_request_of_a_connection(server: Server) -> None:
    headers = sized_headers(LIMITS.max_header_total_bytes - 100, LIMITS.max_header_count - 5)
    with connect(server) as sock:
        for _ in range(3):
            sock.sendall(get(headers=headers))
            assert read_answer(sock).status == 200


def test_a_body_arriving_with_its_head_does_not_count_as_head(server: Server) -> None:
    body = json.dumps({"data": "x" * (4 * LIMITS.max_head_bytes)}).encode()
    head = (
        "POST /items HTTP/1.1\r\nHost: kit\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    answer = exchange(server, head + body)
    assert answer.status == 200, answer.body
    assert json.loads(answer.body) == {"data_bytes": 4 * LIMITS.max_head_bytes}


def test_the_refusal_carries_the_callers_request_id(server: Server) -> None:
    answer = refused(
        server,
        get(headers=[("X-Request-ID", "probe-42"), ("X-Big", "a" * (2 * LIMITS.max_header_bytes))]),
    )
    assert answer.headers["x-request-id"] == "probe-42"
    assert answer.envelope("HEADER_FIELDS_TOO_LARGE")["request_id"] == "probe-42"


def test_an_endless_header_is_refused_once_past_the_limits_not_buffered(
    fresh_server: Callable[[], Server],
) -> None:
    served = fresh_server()
    peak_before = served.peak_rss_kib()
    total = 64 * MIB
    block = b"a" * 65536
    sent = 0
    with connect(served) as sock:
        sock.sendall(b"POST /items HTTP/1.1\r\nHost: kit\r\nContent-Length: 2\r\nX-Big: ")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < total and not select.select([sock], [], [], 0)[0]:
                sock.sendall(block)
                sent += len(block)
        answer = read_answer(sock)
        assert answer.status == 431
        answer.envelope("HEADER_FIELDS_TOO_LARGE")
        # Answered long before the header's end: what was sent beyond the limit
        # sat in loopback socket buffers (a few MiB), not in the server.
        assert sent < total // 4, f"{sent / MIB:.1f} MiB sent before the answer"
        # Then the server reads at most LINGER_BYTES more and ends the connection:
        # the rest of the header cannot be sent.
        still = 0
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            while still < total - sent:
                sock.sendall(block)
                still += len(block)
        assert still < 16 * LINGER_BYTES, f"{still / MIB:.1f} MiB more accepted after the answer"
    growth_kib = served.peak_rss_kib() - peak_before
    assert growth_kib < 8 * 1024, f"peak RSS grew {growth_kib} KiB"


# ------------------------------------------------------ malformed requests


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GARBAGE\x01 /items HTTP/1.1\r\nHost: kit\r\n\r\n", id="bad-method"),
        pytest.param(b"GET /items HTTP/9.9\r\nHost: kit\r\n\r\n", id="bad-version"),
        pytest.param(b"GET /it ems HTTP/1.1\r\nHost: kit\r\n\r\n", id="space-in-target"),
        pytest.param(b"GET /items HTTP/1.1\r\nBad Name: v\r\n\r\n", id="space-in-name"),
        pytest.param(b"GET /items HTTP/1.1\r\nX-A: v\x00w\r\n\r\n", id="nul-in-value"),
        pytest.param(
            b"GET /items HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            id="two-lengths",
        ),
        pytest.param(
            b"POST /items HTTP/1.1\r\nHost: kit\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            id="bad-chunk-size",
        ),
    ],
)
def test_what_httptools_refuses_is_400_in_the_envelope(server: Server, data: bytes) -> None:
    answer = refused(server, data)
    assert answer.status == 400
    answer.envelope("BAD_REQUEST")


def test_a_bad_pipelined_request_does_not_overtake_the_answer_before_it(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(get() + b"GARBAGE\x01 / HTTP/1.1\r\n\r\n")
        answer = read_answer(sock)
        assert answer.status == 200
        assert answer.headers["connection"] == "close"
        assert_closed(sock)


def test_a_websocket_upgrade_is_answered_as_plain_http(server: Server) -> None:
    upgrade = [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ]
    answer = exchange(server, get(headers=upgrade))
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"


def test_a_trailing_slash_is_404_not_a_redirect(server: Server) -> None:
    answer = exchange(server, get("/items/"))
    assert answer.status == 404
    assert "location" not in answer.headers
    answer.envelope("NOT_FOUND")
