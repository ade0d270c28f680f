"""make run's private backing servers (scripts/private_servers.py), started for real.

Each server is started from the code ``make run`` uses, on a free port in a
directory of its own, asked to answer, and stopped; the test then checks that
no process of it is left, which it also does when the test fails half-way.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import asyncpg
import pytest
from private_servers import (
    PrivateServer,
    server_binary,
    start_private_postgres,
    start_private_rabbitmq,
    start_private_redis,
)
from redis import Redis
from service_kit.testing import free_port


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: under root that is private to root, and PostgreSQL runs as
    # the postgres user, which must reach its data directory.
    path = Path(tempfile.mkdtemp(prefix="private-servers-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def started() -> Iterator[list[PrivateServer]]:
    """Servers a test started; stopped afterwards even when the test failed."""
    servers: list[PrivateServer] = []
    yield servers
    for server in servers:
        server.stop()


def gone(server: PrivateServer) -> bool:
    """The server's process has exited, nothing of its session is left, and its port is
    closed."""
    if server.process.poll() is None:
        return False
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.getsid(int(proc.name)) == server.process.pid:
                    return False
            except (ProcessLookupError, PermissionError):
                continue
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", server.port)) != 0


def test_private_redis_answers_and_stops(run_dir: Path, started: list[PrivateServer]) -> None:
    server = start_private_redis(run_dir / "redis")
    started.append(server)
    client = Redis.from_url(server.settings["REDIS_URL"])
    try:
        client.set("private-servers-test", "yes")
        assert client.get("private-servers-test") == b"yes"
        assert client.config_get("save") == {"save": ""}  # nothing kept on disk
    finally:
        client.close()
    assert server.port != 6379
    server.stop()
    assert gone(server)
    assert not (run_dir / "redis" / "server.pid").exists()


def test_private_postgres_answers_and_stops(run_dir: Path, started: list[PrivateServer]) -> None:
    server = start_private_postgres(run_dir / "postgresql")
    started.append(server)
    url = server.settings["DATABASE_URL"]
    assert url.startswith("postgresql+asyncpg://postgres@127.0.0.1:")

    async def ask() -> tuple[int, str]:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            await conn.execute("CREATE SCHEMA private_test")  # a superuser, as migrations need
            return await conn.fetchval("SELECT 1"), await conn.fetchval("SHOW data_directory")
        finally:
            await conn.close()

    one, data_directory = asyncio.run(ask())
    assert one == 1
    assert data_directory == str(run_dir / "postgresql" / "data")
    server.stop()
    assert gone(server)


def test_a_server_that_cannot_start_leaves_nothing(
    run_dir: Path, started: list[PrivateServer]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match="private redis on port"):
            start_private_redis(run_dir / "redis", port=port, timeout=10)
    assert not (run_dir / "redis" / "server.pid").exists()
    for proc in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert str(run_dir) not in proc.read_bytes().decode(errors="replace")
        except OSError:
            continue


def test_the_instance_a_killed_make_run_left_is_stopped(
    run_dir: Path, started: list[PrivateServer]
) -> None:
    first = start_private_redis(run_dir / "redis")
    started.append(first)
    second = start_private_redis(run_dir / "redis")  # make run started again after a kill
    started.append(second)
    first.process.wait(10)
    assert gone(first)
    assert Redis.from_url(second.settings["REDIS_URL"]).ping()


def test_private_rabbitmq_answers_beside_the_system_one_and_stops(
    run_dir: Path, started: list[PrivateServer]
) -> None:
    if server_binary("rabbitmq") is None:
        pytest.fail("rabbitmq-server is not installed (make run installs it when needed)")

    async def connects(url: str) -> bool:
        try:
            connection = await asyncio.wait_for(aio_pika.connect(url), 5)
        except Exception:
            return False
        await connection.close()
        return True

    system_url = "amqp://guest:guest@127.0.0.1:5672/"
    system_broker = asyncio.run(connects(system_url))
    server = start_private_rabbitmq(run_dir / "rabbitmq", port=free_port(), timeout=60)
    started.append(server)
    url = server.settings["RABBITMQ_URL"]

    async def round_trip() -> bytes:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue("private-test", auto_delete=True)
            await channel.default_exchange.publish(aio_pika.Message(b"hello"), "private-test")
            message = await queue.get(timeout=5)
            assert message is not None
            await message.ack()
            return message.body

    assert asyncio.run(round_trip()) == b"hello"
    server.stop()
    assert gone(server)
    if system_broker:
        assert asyncio.run(connects(system_url)), "the system's broker was disturbed"


def test_make_run_does_not_replace_a_server_configured_on_purpose(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import run_local

    def must_not_start(*_args: object) -> list[PrivateServer]:
        pytest.fail("a private server was started for a server the user configured")

    monkeypatch.setenv("DATABASE_URL", f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x")
    monkeypatch.setattr(run_local, "start_private_servers", must_not_start)
    assert run_local.main() == 2
    err = capsys.readouterr().err
    assert "Cannot start" in err and "PostgreSQL at" in err


def test_installing_a_missing_server_keeps_its_system_service_from_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the packages whose binary is absent are installed, through
    scripts/ensure_system_packages.sh, while a policy-rc.d forbids invoke-rc.d to start
    any service; the policy-rc.d is removed afterwards, or left when it was there."""
    import subprocess

    import private_servers

    policy = tmp_path / "policy-rc.d"
    monkeypatch.setattr(private_servers, "POLICY_RC_D", policy)
    monkeypatch.setattr(private_servers, "_as_root", lambda command: command)
    monkeypatch.setattr(
        private_servers, "server_binary", lambda name: None if name == "redis" else "/bin/true"
    )
    real_run = subprocess.run
    installed: list[list[str]] = []
    answers: list[int] = []

    def run(command: list[str], **kwargs: object) -> object:
        if command[:2] == ["bash", str(private_servers.ENSURE_PACKAGES)]:
            installed.append(command[2:])
            # What invoke-rc.d asks before starting the package's service.
            answers.append(real_run([str(policy), "redis-server", "start"]).returncode)
            return subprocess.CompletedProcess(command, 0)
        if command[0] == "systemctl":
            return subprocess.CompletedProcess(command, 0)
        return real_run(command, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(private_servers.subprocess, "run", run)
    private_servers.install_packages(["postgresql", "redis", "prometheus"])
    assert installed == [["redis-server"]]
    assert answers == [101]  # action forbidden
    assert not policy.exists()

    policy.write_text("#!/bin/sh\nexit 101\n# the machine's own\n")
    policy.chmod(0o755)
    monkeypatch.setattr(private_servers, "server_binary", lambda name: None)
    private_servers.install_packages(["rabbitmq", "prometheus"])
    assert installed[-1] == ["rabbitmq-server", "prometheus"]
    assert policy.read_text() == "#!/bin/sh\nexit 101\n# the machine's own\n"
