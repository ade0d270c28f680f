"""Hostile HTTP at the gateway (issue 8): head limits while parsing, malformed requests and
upstream redirects, every answer in the envelope.

The gateway process is served by the kit's ``serve`` like every service, so its
limits are the kit's protocol; these tests check the gateway gets them (and its
settings reach them), never forwards what it refused, and never hands a client
an upstream's address.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import uuid
from collections.abc import Callable

import httpx
import pytest
from gateway_fakes import MIB, FakeUpstreams, GatewayProcess


def _request(target: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: gateway", *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {n.strip().lower(): v.strip() for n, _, v in (x.partition(":") for x in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of the body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def _refused(gateway: GatewayProcess, data: bytes) -> tuple[int, dict[str, object]]:
    """Sends ``data``; returns the status and envelope, having checked the connection ends."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        status, headers, body = _read_answer(sock)
        assert headers["content-type"] == "application/json"
        assert headers["connection"] == "close"
        with contextlib.suppress(ConnectionResetError):
            while sock.recv(65536):
                pass
    error: dict[str, object] = json.loads(body)["error"]
    assert error["request_id"] == headers["x-request-id"]
    return status, error


def test_a_huge_header_on_an_unauthenticated_login_is_431_and_never_forwarded(
    gateway: GatewayProcess, upstreams: FakeUpstreams
) -> None:
    request_id = uuid.uuid4().hex
    head = (
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: gateway\r\n"
        f"X-Request-ID: {request_id}\r\nX-Big: {'a' * MIB}\r\n\r\n"
    ).encode()
    status, error = _refused(gateway, head)
    assert status == 431
    assert error["code"] == "HEADER_FIELDS_TOO_LARGE"
    assert error["request_id"] == request_id
    assert upstreams.hits_for(request_id) == []


def test_too_many_headers_are_431(gateway: GatewayProcess) -> None:
    headers = [(f"X-H{i}", "1") for i in range(200_000)]
    status, error = _refused(gateway, _request("/healthz", headers))
    assert status == 431
    assert error["code"] == "HEADER_FIELDS_TOO_LARGE"


def test_an_oversized_url_is_414(gateway: GatewayProcess) -> None:
    status, error = _refused(gateway, _request("/api/v1/exams?q=" + "a" * MIB, []))
    assert status == 414
    assert error["code"] == "URI_TOO_LONG"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GARBAGE\x01 / HTTP/1.1\r\n\r\n", id="bad-request-line"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nBad Name: v\r\n\r\n", id="bad-header-name"),
        pytest.param(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: g\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\n",
            id="bad-chunk",
        ),
    ],
)
def test_malformed_requests_get_400_in_the_envelope(gateway: GatewayProcess, data: bytes) -> None:
    status, error = _refused(gateway, data)
    assert status == 400
    assert error["code"] == "BAD_REQUEST"


def test_a_websocket_upgrade_gets_the_envelope_not_a_plain_500(client: httpx.Client) -> None:
    response = client.get(
        "/api/v1/auth/me",
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AUTH_TOKEN_MISSING"


def test_an_endless_header_is_answered_early_and_the_gateway_does_not_grow(
    gateway: GatewayProcess,
) -> None:
    before = gateway.memory_kib()["VmHWM"]
    total, sent = 128 * MIB, 0
    block = b"a" * 65536
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(b"POST /api/v1/auth/login HTTP/1.1\r\nHost: gateway\r\nX-Big: ")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while sent < total and not select.select([sock], [], [], 0)[0]:
                sock.sendall(block)
                sent += len(block)
        status, _, body = _read_answer(sock)
    assert status == 431
    assert json.loads(body)["error"]["code"] == "HEADER_FIELDS_TOO_LARGE"
    assert sent < 16 * MIB, f"{sent / MIB:.1f} MiB sent before the answer"
    growth_kib = gateway.memory_kib()["VmHWM"] - before
    assert growth_kib < 8 * 1024, f"the gateway's peak RSS grew {growth_kib} KiB"


def test_header_limits_are_settings(start_gateway: Callable[..., GatewayProcess]) -> None:
    small = start_gateway(HTTP_MAX_HEADER_BYTES="2048", HTTP_MAX_URL_BYTES="512")
    status, error = _refused(small, _request("/healthz", [("X-Big", "a" * 3000)]))
    assert (status, error["code"]) == (431, "HEADER_FIELDS_TOO_LARGE")
    status, error = _refused(small, _request("/healthz?" + "q" * 600, []))
    assert (status, error["code"]) == (414, "URI_TOO_LONG")
    assert httpx.get(small.url + "/healthz", headers={"X-Big": "a" * 1500}).status_code == 200


def test_an_upstream_redirect_never_names_the_upstream(
    client: httpx.Client, auth: dict[str, str], upstreams: FakeUpstreams
) -> None:
    response = client.get("/api/v1/users/", params={"redirect_to": "/api/v1/users"}, headers=auth)
    assert response.status_code == 307
    assert response.headers["location"] == "/api/v1/users"
    assert str(upstreams.ports["auth"]) not in response.text + str(response.headers)
