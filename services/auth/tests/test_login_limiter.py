"""LoginLimiter against real Redis: the one-script admit, its windows, and what it tells login."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from auth_service.store.login_limits import Admission, LoginLimiter, LoginLimits, Refusal
from auth_support import ADMIN_EMAIL, ADMIN_PASSWORD, REDIS_URL, Service
from redis.asyncio import Redis
from service_kit.testing import scratch_redis

MakeLimiter = Callable[..., LoginLimiter]

EMAIL = "ann@example.edu"
ADDRESS = "203.0.113.7"


def limits(**changes: int) -> LoginLimits:
    values = {
        "max_failures_per_email": 3,
        "failure_window_seconds": 900,
        "max_attempts_per_address": 100,
        "address_window_seconds": 60,
    }
    values.update(changes)
    return LoginLimits(**values)


@pytest.fixture
async def redis(unique: str) -> AsyncIterator[Redis]:
    async with scratch_redis(Redis.from_url(REDIS_URL), f"limiter-test:{unique}:") as client:
        yield client


@pytest.fixture
def make_limiter(redis: Redis, unique: str) -> MakeLimiter:
    def make(**changes: int) -> LoginLimiter:
        return LoginLimiter(redis, f"limiter-test:{unique}:", limits(**changes))

    return make


async def test_admit_refuses_an_address_over_its_attempts_until_the_window_ends(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter(max_attempts_per_address=2, address_window_seconds=1)
    assert (await limiter.admit(ADDRESS, EMAIL)).refusal is None
    assert (await limiter.admit(ADDRESS, "other@example.edu")).refusal is None

    refused = await limiter.admit(ADDRESS, EMAIL)

    assert refused.refusal == Refusal("address", retry_after_seconds=1)
    assert (await limiter.admit("198.51.100.1", EMAIL)).refusal is None  # another address
    await asyncio.sleep(1.2)  # the window started with the first attempt, and is over
    assert (await limiter.admit(ADDRESS, EMAIL)).refusal is None


async def test_admit_counts_concurrent_attempts_exactly(make_limiter: MakeLimiter) -> None:
    limiter = make_limiter(max_attempts_per_address=10)

    answers = await asyncio.gather(*(limiter.admit(ADDRESS, EMAIL) for _ in range(25)))

    assert sum(a.refusal is None for a in answers) == 10


async def test_admit_refuses_an_email_with_its_failures_used_up_and_says_until_when(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter(max_failures_per_email=2, failure_window_seconds=30)
    await limiter.record_failure(EMAIL)
    assert (await limiter.admit(ADDRESS, EMAIL)).refusal is None
    await limiter.record_failure(EMAIL)

    refused = await limiter.admit(ADDRESS, " ANN@example.edu")  # the same email

    assert refused.refusal is not None
    assert refused.refusal.reason == "email"
    assert 28 <= refused.refusal.retry_after_seconds <= 30
    assert (await limiter.admit(ADDRESS, "other@example.edu")).refusal is None


async def test_failures_of_an_email_expire_with_their_window(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter(max_failures_per_email=1, failure_window_seconds=1)
    await limiter.record_failure(EMAIL)
    assert (await limiter.admit(ADDRESS, EMAIL)).refusal is not None

    await asyncio.sleep(1.2)

    assert await limiter.admit(ADDRESS, EMAIL) == Admission(refusal=None, may_have_failures=False)


async def test_admit_says_whether_a_success_has_failures_to_clear(
    make_limiter: MakeLimiter,
) -> None:
    limiter = make_limiter()
    assert (await limiter.admit(ADDRESS, EMAIL)).may_have_failures is False

    await limiter.record_failure(EMAIL)
    assert (await limiter.admit(ADDRESS, EMAIL)).may_have_failures is True

    await limiter.clear_failures(EMAIL)
    assert (await limiter.admit(ADDRESS, EMAIL)).may_have_failures is False


async def test_admit_reloads_its_script_when_redis_no_longer_has_it(
    make_limiter: MakeLimiter, redis: Redis, unique: str
) -> None:
    limiter = make_limiter(max_attempts_per_address=1)
    # What a restarted Redis looks like to EVALSHA (NOSCRIPT), without flushing
    # the scripts of everything else that shares this server.
    limiter._admit.sha = "0" * 40

    assert (await limiter.admit(ADDRESS, EMAIL)).refusal is None
    assert (await limiter.admit(ADDRESS, EMAIL)).refusal is not None
    assert await redis.ttl(f"limiter-test:{unique}:auth:login:addr:{ADDRESS}") > 0


async def test_admit_lets_attempts_through_when_redis_is_down() -> None:
    down = Redis.from_url("redis://127.0.0.1:1/0")
    try:
        limiter = LoginLimiter(down, "limiter-test:", limits())

        # Unknown failures: a success still tries to clear them.
        assert await limiter.admit(ADDRESS, EMAIL) == Admission(None, may_have_failures=True)
    finally:
        await down.aclose()


async def test_a_login_clears_failures_only_when_its_email_had_some(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    cleared: list[str] = []
    original = LoginLimiter.clear_failures

    async def counting_clear(self: LoginLimiter, email: str) -> None:
        cleared.append(email)
        await original(self, email)

    monkeypatch.setattr(LoginLimiter, "clear_failures", counting_clear)

    assert (await service.login(ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200
    assert cleared == []  # nothing to clear: no Redis round trip for it

    assert (await service.login(ADMIN_EMAIL, "wrong password!")).status_code == 401
    assert (await service.login(ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200
    assert cleared == [ADMIN_EMAIL]
    assert (await service.login(ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200
    assert cleared == [ADMIN_EMAIL]
