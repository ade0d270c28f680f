"""Bodies stream through in both directions with bounded memory."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

import httpx
from gateway_fakes import MIB, GatewayProcess, download_chunk

SIZE_MIB = 40
# Peak RSS may grow by at most this much while 40 MiB flow each way: a buffered
# body would add at least 40 MiB.
MEMORY_BUDGET_KIB = 16 * 1024


def test_40_mib_upload_and_download_stream_with_bounded_memory(
    start_gateway: Callable[..., GatewayProcess], auth: dict[str, str]
) -> None:
    gateway = start_gateway()
    with httpx.Client(base_url=gateway.url, timeout=60) as http:
        http.get("/api/v1/exams", headers=auth)  # warm up imports and the pool
        before = gateway.memory_kib()

        sent = hashlib.sha256()

        def upload() -> Iterator[bytes]:
            block = b"S0001,MATH,75\n" * 4681  # ~64 KiB
            total = 0
            while total < SIZE_MIB * MIB:
                piece = block[: SIZE_MIB * MIB - total]
                sent.update(piece)
                total += len(piece)
                yield piece

        response = http.post(
            "/api/v1/exams/5f0c6f1e-8d1a-4c4e-9a7e-2f3b4c5d6e7f/imports",
            headers={**auth, "Content-Type": "text/csv"},
            content=upload(),
        )
        assert response.status_code == 200, response.text
        assert response.json()["body_bytes"] == SIZE_MIB * MIB
        assert response.json()["body_sha256"] == sent.hexdigest()

        received = hashlib.sha256()
        size = 0
        with http.stream(
            "GET", f"/api/v1/jobs/0b8f8d0e/download?mb={SIZE_MIB}", headers=auth
        ) as download:
            assert download.status_code == 200
            assert download.headers["content-type"] == "text/csv"
            for chunk in download.iter_raw():
                received.update(chunk)
                size += len(chunk)
        expected = hashlib.sha256(download_chunk() * (SIZE_MIB * MIB // len(download_chunk())))
        assert size == SIZE_MIB * MIB
        assert received.hexdigest() == expected.hexdigest()

        after = gateway.memory_kib()
    growth = after["VmHWM"] - before["VmHWM"]
    print(f"gateway peak RSS {before['VmHWM']} -> {after['VmHWM']} KiB (+{growth} KiB)")
    assert growth < MEMORY_BUDGET_KIB


def test_client_leaving_a_download_does_not_break_the_gateway(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    with client.stream("GET", "/api/v1/jobs/x/download?mb=20", headers=auth) as download:
        for _ in download.iter_raw():
            break
    assert client.get("/api/v1/exams", headers=auth).status_code == 200
