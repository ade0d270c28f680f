"""Bounded admission to the hashing pool (docs/adr/0020): shed sign-ins, never the probes.

The unit tests drive :class:`PasswordHashing` directly; the storm test serves
the real app with uvicorn on a free port (one hashing thread, Argon2id at the
production parameters so that hashing is what limits it) and sends sign-ins at
three times the rate that thread sustains, while ``/readyz`` and ``/me`` are
polled with the manifest's readiness probe timeout as the client timeout.
"""

from __future__ import annotations

import asyncio
import math
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from auth_service.domain.passwords import OWASP_MINIMUM, Argon2idHasher, Argon2Params
from auth_service.hashing import HashAdmission, HashingOverloaded, PasswordHashing
from auth_service.main import create_app
from auth_service.settings import AuthSettings, cgroup_cpu_limit
from auth_support import ADMIN_EMAIL, ADMIN_PASSWORD, Service, StartService, bearer
from service_kit.errors import ErrorCode
from service_kit.host import component
from service_kit.testing import free_port

TINY = Argon2Params(memory_kib=64, time_cost=1, parallelism=1)
AUTH_MANIFEST = Path(__file__).resolve().parents[3] / "deploy" / "k8s" / "base" / "auth.yaml"


# -- the admission itself ------------------------------------------------------------


async def _occupy(
    hashing: PasswordHashing, count: int, release: threading.Event
) -> list[asyncio.Task[bool]]:
    """``count`` jobs in the pool (not admitted, like the import consumer's) that hold
    their thread until ``release`` is set; all submitted when this returns."""
    tasks = [asyncio.create_task(hashing._run("hash", None, release.wait)) for _ in range(count)]
    while hashing.in_flight < count:
        await asyncio.sleep(0)
    return tasks


async def test_an_admitted_call_is_refused_when_the_estimated_wait_exceeds_the_budget() -> None:
    hashing = PasswordHashing(TINY, 1, HashAdmission(budget_seconds=1e-6, max_queue=100))
    release = threading.Event()
    try:
        await hashing.hash("seeds the moving average")
        assert hashing.estimated_wait() == 0.0
        queued = await _occupy(hashing, 3, release)

        assert hashing.estimated_wait() > 0
        with pytest.raises(HashingOverloaded) as refused:
            await hashing.verify(None, "a sign-in", operation="login")
        # Nothing was submitted for the refused call.
        assert hashing.in_flight == 3
        assert refused.value.code is ErrorCode.UPSTREAM_UNAVAILABLE
        assert refused.value.status == 503
        assert int(refused.value.headers["Retry-After"]) >= 1

        # A caller that must not be dropped (the import consumer) waits instead.
        imported = asyncio.create_task(hashing.hash("an imported user's password"))
        await asyncio.sleep(0.05)
        assert not imported.done()
        assert hashing.in_flight == 4
        release.set()
        assert (await imported).startswith("$argon2id$")
        await asyncio.gather(*queued)
        assert hashing.in_flight == 0
        # The queue drained: admitted again.
        assert not (await hashing.verify(None, "a sign-in", operation="login")).ok
    finally:
        hashing.close()


async def test_the_hard_cap_refuses_whatever_the_estimate() -> None:
    hashing = PasswordHashing(TINY, 1, HashAdmission(budget_seconds=math.inf, max_queue=2))
    release = threading.Event()
    try:
        queued = await _occupy(hashing, 2, release)
        with pytest.raises(HashingOverloaded):
            await hashing.hash("a new user's password", operation="user_create")
        release.set()
        await asyncio.gather(*queued)
        assert await hashing.hash("a new user's password", operation="user_create")
    finally:
        hashing.close()


async def test_a_caller_that_goes_away_keeps_its_place_until_its_hash_ends() -> None:
    hashing = PasswordHashing(OWASP_MINIMUM, 1)
    try:
        caller = asyncio.create_task(hashing.hash("abandoned"))
        while hashing.in_flight == 0:
            await asyncio.sleep(0)
        await asyncio.sleep(0.005)  # running in the thread by now
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        deadline = time.monotonic() + 10
        while hashing.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        assert hashing.in_flight == 0
    finally:
        hashing.close()


def test_cgroup_cpu_limits_are_read_in_whole_cpus(tmp_path: Path) -> None:
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("250000 100000\n")
    assert cgroup_cpu_limit(v2) == 2
    (v2 / "cpu.max").write_text("50000 100000\n")
    assert cgroup_cpu_limit(v2) == 1
    (v2 / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(v2) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(v1) == 3
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(v1) is None
    assert cgroup_cpu_limit(tmp_path / "absent") is None


async def test_a_shed_login_is_a_503_in_the_envelope_with_retry_after(
    start_service: StartService,
) -> None:
    service = await start_service(password_hash_max_queue=1)
    hashing = component(service.app, PasswordHashing)
    before = await service.metric("auth_password_hash_shed_total", operation="login")
    release = threading.Event()
    queued = await _occupy(hashing, 1, release)
    try:
        response = await service.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    finally:
        release.set()
        await asyncio.gather(*queued)

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "UPSTREAM_UNAVAILABLE"
    assert error["request_id"] == response.headers["X-Request-ID"]
    assert await service.metric("auth_password_hash_shed_total", operation="login") == before + 1
    assert (await service.login(ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200


# -- a sign-in storm at one served process ---------------------------------------------


def _readiness_timeout_seconds() -> float:
    """``readinessProbe.timeoutSeconds`` of the auth Deployment in the manifests."""
    for document in yaml.safe_load_all(AUTH_MANIFEST.read_text()):
        if document and document["kind"] == "Deployment":
            (container,) = document["spec"]["template"]["spec"]["containers"]
            return float(container["readinessProbe"]["timeoutSeconds"])
    raise AssertionError("no auth Deployment in the manifests")


def _seconds_per_verify(params: Argon2Params, rounds: int = 5) -> float:
    hasher = Argon2idHasher(params)
    encoded = hasher.hash(ADMIN_PASSWORD)
    started = time.perf_counter()
    for _ in range(rounds):
        hasher.verify(encoded, ADMIN_PASSWORD)
    return (time.perf_counter() - started) / rounds


@dataclass
class Probe:
    statuses: list[int] = field(default_factory=list)
    timeouts: int = 0
    seconds: list[float] = field(default_factory=list)


async def _poll(
    base_url: str,
    path: str,
    probe: Probe,
    stop: asyncio.Event,
    timeout: float,
    headers: dict[str, str] | None = None,
) -> None:
    """GETs ``path`` every 0.1 s until ``stop``, on a connection of its own (as a kubelet
    would), each call bounded by ``timeout`` as a whole (connect, send, answer)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, headers=headers) as client:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                response = await asyncio.wait_for(client.get(path), timeout)
            except (TimeoutError, httpx.TimeoutException):
                probe.timeouts += 1
            else:
                probe.statuses.append(response.status_code)
                probe.seconds.append(time.perf_counter() - started)
            await asyncio.sleep(0.1)


async def _serve(env: dict[str, str], base_url: str) -> asyncio.subprocess.Process:
    """``python -m auth_service serve`` with ``env``, once it answers ``/healthz``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "auth_service", "serve", env={**os.environ, **env}
    )
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as client:
        while True:
            assert process.returncode is None, "auth stopped while starting"
            assert time.monotonic() < deadline, "auth did not start within 60 s"
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


async def test_a_storm_at_three_times_capacity_is_served_or_shed_and_probes_stay_fast(
    settings: AuthSettings,
    start_service: StartService,  # its teardown drops the test's Redis keys and queues
) -> None:
    params = OWASP_MINIMUM
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    # One auth process of its own (the load generator runs here, as a kubelet and the
    # gateway run elsewhere), one hashing thread, Argon2id at the production cost.
    env = {
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "RABBITMQ_URL": settings.rabbitmq_url,
        "REDIS_KEY_PREFIX": settings.redis_key_prefix,
        "QUEUE_PREFIX": settings.queue_prefix,
        "EVENTS_EXCHANGE": settings.events_exchange,
        "QUEUE_EXPIRES_SECONDS": str(settings.queue_expires_seconds),
        "JWT_SIGNING_KEY_FILE": str(settings.jwt_signing_key_file),
        "ADMIN_EMAIL": ADMIN_EMAIL,
        "ADMIN_PASSWORD": ADMIN_PASSWORD,
        "AUTH_HOST": "127.0.0.1",
        "AUTH_PORT": str(port),
        "ARGON2_MEMORY_KIB": str(params.memory_kib),
        "ARGON2_TIME_COST": str(params.time_cost),
        "ARGON2_PARALLELISM": str(params.parallelism),
        "PASSWORD_HASH_WORKERS": "1",
        "PASSWORD_HASH_QUEUE_BUDGET_SECONDS": "0.5",
        "LOGIN_MAX_ATTEMPTS_PER_IP": "1000000",
    }
    probe_timeout = _readiness_timeout_seconds()
    per_verify = await asyncio.to_thread(_seconds_per_verify, params)
    sustainable = 1 / per_verify  # one hashing thread
    rate, storm_seconds = 3 * sustainable, 5.0

    process = await _serve(env, base_url)
    try:
        async with httpx.AsyncClient(
            base_url=base_url,
            timeout=30.0,
            limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200),
        ) as client:
            service = Service(create_app(settings), client, settings)  # for its helpers
            token = await service.access_token(ADMIN_EMAIL, ADMIN_PASSWORD)
            shed_before = await service.metric("auth_password_hash_shed_total", operation="login")

            logins: list[httpx.Response] = []
            login_timeouts = 0

            async def login() -> None:
                nonlocal login_timeouts
                try:
                    logins.append(await service.login(ADMIN_EMAIL, ADMIN_PASSWORD))
                except httpx.TimeoutException:
                    login_timeouts += 1

            stop = asyncio.Event()
            ready, me = Probe(), Probe()
            pollers = [
                asyncio.create_task(_poll(base_url, "/readyz", ready, stop, probe_timeout)),
                asyncio.create_task(
                    _poll(base_url, "/api/v1/auth/me", me, stop, probe_timeout, bearer(token))
                ),
            ]
            started = time.monotonic()
            sent: list[asyncio.Task[None]] = []
            while (elapsed := time.monotonic() - started) < storm_seconds:
                # Open loop: the arrivals do not slow down when the answers do.
                while len(sent) < elapsed * rate:
                    sent.append(asyncio.create_task(login()))
                await asyncio.sleep(0.005)
            await asyncio.gather(*sent)
            stop.set()
            await asyncio.gather(*pollers)
            shed_after = await service.metric("auth_password_hash_shed_total", operation="login")
    finally:
        await _stop(process)

    assert login_timeouts == 0
    served = [r for r in logins if r.status_code == 200]
    shed = [r for r in logins if r.status_code == 503]
    assert len(served) + len(shed) == len(logins) == len(sent), sorted(
        {r.status_code for r in logins}
    )
    for response in shed:
        assert int(response.headers["Retry-After"]) >= 1
        assert response.json()["error"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert served, "the storm starved every sign-in"
    assert shed, f"nothing shed at {rate:.0f} sign-ins/s ({per_verify * 1000:.1f} ms per verify)"
    assert shed_after - shed_before == len(shed)
    # The probes: answered, in time, throughout.
    assert ready.timeouts == 0 and me.timeouts == 0
    assert len(ready.statuses) >= storm_seconds / 0.5
    assert set(ready.statuses) == {200}
    assert set(me.statuses) == {200}
    print(
        f"\nstorm: {len(logins)} sign-ins at {rate:.0f}/s ({per_verify * 1000:.1f} ms per "
        f"verify): {len(served)} served, {len(shed)} shed; /readyz p50 "
        f"{statistics.median(ready.seconds) * 1000:.1f} ms, max {max(ready.seconds) * 1000:.1f} ms"
        f"; /me p50 {statistics.median(me.seconds) * 1000:.1f} ms, max "
        f"{max(me.seconds) * 1000:.1f} ms"
    )
