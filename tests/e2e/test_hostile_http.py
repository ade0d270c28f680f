"""Hostile HTTP against the real suite (issue 8): head limits, malformed requests, redirects.

The probe that found these sent one 128 MiB header on an unauthenticated login
(the gateway and auth each grew by hundreds of MB) and got ``307 Location:
http://127.0.0.1:8001/api/v1/users`` for ``/api/v1/users/``. Raw sockets are
used for what an HTTP client would refuse to send or would not read back.
"""

from __future__ import annotations

import contextlib
import json
import socket
from urllib.parse import urlsplit

import pytest
from conftest import E2E, bearer

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def _refusal(port: int, data: bytes) -> tuple[int, dict[str, str], dict[str, str]]:
    """Sends ``data``; the status, headers and envelope ``error`` of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        raw = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {n.strip().lower(): v.strip() for n, _, v in (x.partition(":") for x in lines)}
    error: dict[str, str] = json.loads(body)["error"]
    return int(status_line.split()[1]), headers, error


def _login_with_a_huge_header() -> bytes:
    body = b'{"email": "a@example.edu", "password": "xxxxxxxxxxxx"}'
    return (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: e2e\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nX-Big: %s\r\n\r\n%s" % (len(body), b"a" * MIB, body)
    )


def test_a_1_mib_header_is_431_in_the_envelope_at_the_gateway_and_every_service(
    e2e: E2E,
) -> None:
    for name in ("gateway", "auth", "results"):
        status, headers, error = _refusal(_port(e2e.suite.url(name)), _login_with_a_huge_header())
        assert status == 431, name
        assert headers["content-type"] == "application/json", name
        assert headers["connection"] == "close", name
        assert error["code"] == "HEADER_FIELDS_TOO_LARGE", name
        assert error["request_id"] == headers["x-request-id"], name


def test_a_malformed_request_is_400_in_the_envelope_through_the_gateway(e2e: E2E) -> None:
    status, headers, error = _refusal(_port(e2e.gateway), b"GARBAGE\x01 / HTTP/1.1\r\n\r\n")
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert error["code"] == "BAD_REQUEST"


def test_a_trailing_slash_is_404_and_no_answer_names_an_upstream(
    e2e: E2E, admin_tokens: dict[str, str]
) -> None:
    with e2e.client() as client:
        response = client.get("/api/v1/users/", headers=bearer(admin_tokens["access_token"]))
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert "location" not in response.headers
    everything = str(response.headers) + response.text
    assert "127.0.0.1" not in everything
    for name in ("auth", "results"):
        assert f":{_port(e2e.suite.url(name))}" not in everything
