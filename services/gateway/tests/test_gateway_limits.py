"""Body limits (413), the per-user rate limit (429) and Redis being down."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import httpx
from gateway_fakes import MIB, FakeUpstreams, GatewayProcess, SigningKey, raw_exchange

EXAM = "5f0c6f1e-8d1a-4c4e-9a7e-2f3b4c5d6e7f"


def _head(method: str, path: str, token: str, request_id: str, extra: str) -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Origin: http://localhost:5173\r\nX-Request-ID: {request_id}\r\n{extra}\r\n"
    ).encode()


async def test_declared_body_over_max_body_bytes_gets_413_without_upstream_call(
    gateway: GatewayProcess, upstreams: FakeUpstreams, token: str
) -> None:
    request_id = uuid.uuid4().hex
    head = _head("POST", "/api/v1/exams", token, request_id, f"Content-Length: {2 * MIB}\r\n")
    response = await raw_exchange(gateway.port, head)  # headers only: refused up front
    assert response.status == 413
    assert b"PAYLOAD_TOO_LARGE" in response.body
    assert response.headers["connection"] == "close"
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert upstreams.hits_for(request_id) == []


async def test_declared_upload_over_max_upload_bytes_gets_413(
    gateway: GatewayProcess, upstreams: FakeUpstreams, token: str
) -> None:
    request_id = uuid.uuid4().hex
    path = f"/api/v1/exams/{EXAM}/imports"
    head = _head("POST", path, token, request_id, f"Content-Length: {51 * MIB}\r\n")
    response = await raw_exchange(gateway.port, head)
    assert response.status == 413
    assert upstreams.hits_for(request_id) == []


def test_uploads_may_exceed_max_body_bytes(client: httpx.Client, auth: dict[str, str]) -> None:
    body = b"student_number,subject_code,mark\n" + b"S1,MATH,50\n" * (2 * MIB // 11)
    response = client.post(
        f"/api/v1/exams/{EXAM}/imports",
        headers={**auth, "Content-Type": "text/csv"},
        content=body,
    )
    assert response.status_code == 200
    assert response.json()["body_bytes"] == len(body)
    assert response.json()["headers"]["content-length"] == [str(len(body))]


async def test_chunked_body_crossing_the_limit_is_cut_off_with_413(
    gateway: GatewayProcess, upstreams: FakeUpstreams, token: str
) -> None:
    request_id = uuid.uuid4().hex
    head = _head("POST", "/api/v1/exams", token, request_id, "Transfer-Encoding: chunked\r\n")
    chunk = b"x" * 65536
    # 17 x 64 KiB crosses 1 MiB on the last chunk; the terminating chunk is never sent.
    frames = [b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(17)]
    response = await raw_exchange(gateway.port, head, frames)
    assert response.status == 413
    assert b"PAYLOAD_TOO_LARGE" in response.body
    time.sleep(0.2)
    assert not any(hit.body_complete for hit in upstreams.hits_for(request_id))


def test_chunked_body_under_the_limit_is_streamed_through(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    def body() -> Iterator[bytes]:
        for _ in range(10):
            yield b"y" * 10_000

    response = client.post("/api/v1/exams", headers=auth, content=body())
    assert response.status_code == 200
    assert response.json()["body_bytes"] == 100_000
    assert response.json()["headers"]["transfer-encoding"] == ["chunked"]


def test_rate_limit_refuses_with_429_and_retry_after_per_user(
    start_gateway: Callable[..., GatewayProcess],
    upstreams: FakeUpstreams,
    signing_key: SigningKey,
) -> None:
    gateway = start_gateway(RATE_LIMIT_PER_MINUTE="3", RATE_LIMIT_SYNC_MS="50")
    busy = {"Authorization": f"Bearer {signing_key.token()}", "Origin": "http://localhost:5173"}
    with httpx.Client(base_url=gateway.url) as http:
        if 60 - time.time() % 60 < 3:
            time.sleep(3)  # do not straddle a window boundary
        for _ in range(3):
            assert http.get("/api/v1/exams", headers=busy).status_code == 200
        request_id = uuid.uuid4().hex
        refused = http.get("/api/v1/exams", headers={**busy, "X-Request-ID": request_id})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "RATE_LIMITED"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["access-control-allow-origin"] == "http://localhost:5173"
        assert upstreams.hits_for(request_id) == []
        other_user = {"Authorization": f"Bearer {signing_key.token()}"}
        assert http.get("/api/v1/exams", headers=other_user).status_code == 200
        # Token-free calls are not counted per user: auth limits sign-ins and password
        # reset requests itself, per email and per client address.
        assert http.post("/api/v1/auth/login", json={}).status_code == 200
        assert http.post("/api/v1/auth/password/forgot", json={}).status_code == 200


def test_rate_limit_is_shared_across_replicas_through_redis(
    start_gateway: Callable[..., GatewayProcess], signing_key: SigningKey
) -> None:
    prefix = f"test:gateway:shared:{uuid.uuid4().hex}:"
    batched = start_gateway(
        RATE_LIMIT_PER_MINUTE="3", RATE_LIMIT_SYNC_MS="50", REDIS_KEY_PREFIX=prefix
    )
    exact = start_gateway(
        RATE_LIMIT_PER_MINUTE="3", RATE_LIMIT_SYNC_MS="0", REDIS_KEY_PREFIX=prefix
    )
    user = {"Authorization": f"Bearer {signing_key.token()}"}
    if 60 - time.time() % 60 < 3:
        time.sleep(3)
    for _ in range(3):
        assert httpx.get(batched.url + "/api/v1/exams", headers=user).status_code == 200
    time.sleep(0.3)  # the batched replica has added its 3 to the shared counter
    assert httpx.get(exact.url + "/api/v1/exams", headers=user).status_code == 429
    assert httpx.get(batched.url + "/api/v1/exams", headers=user).status_code == 429


def test_redis_down_still_proxies_and_readyz_says_so(
    faulty_gateway: GatewayProcess, auth: dict[str, str]
) -> None:
    with httpx.Client(base_url=faulty_gateway.url) as http:
        for _ in range(5):
            response = http.get("/api/v1/exams", headers=auth)
            assert response.status_code == 200
        ready = http.get("/readyz")
        assert ready.status_code == 200  # the gateway serves without Redis
        assert ready.json()["checks"]["redis"]["ok"] is False
        assert ready.json()["checks"]["redis"]["critical"] is False
        assert ready.json()["checks"]["jwks"]["ok"] is True
        assert http.get("/healthz").status_code == 200
