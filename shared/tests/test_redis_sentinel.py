"""The kit's Redis client follows a real Sentinel group (throwaway servers on free ports)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from service_kit.redis import create_redis
from service_kit.settings import KitSettings

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server binary not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(port)


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[tuple[int, int]]:
    master_port, sentinel_port = free_port(), free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor kitmaster 127.0.0.1 {master_port} 1\n"
        "sentinel down-after-milliseconds kitmaster 1000\n"
    )
    procs = [
        subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(master_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
            ],
            stdout=subprocess.DEVNULL,
        ),
        subprocess.Popen([REDIS_SERVER, str(conf), "--sentinel"], stdout=subprocess.DEVNULL),
    ]
    try:
        wait_port(master_port)
        wait_port(sentinel_port)
        yield master_port, sentinel_port
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()


async def test_client_from_sentinels_talks_to_the_master(sentinel_group: tuple[int, int]) -> None:
    master_port, sentinel_port = sentinel_group
    settings = KitSettings(
        redis_sentinels=f"127.0.0.1:{sentinel_port}", redis_sentinel_master="kitmaster"
    )
    client = create_redis(settings)
    try:
        await client.set("kit:sentinel:probe", "1")
        info = await client.info("server")
        assert int(info["tcp_port"]) == master_port
    finally:
        await client.aclose()
