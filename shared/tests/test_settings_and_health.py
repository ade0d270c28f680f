from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError
from service_kit.health import Readiness
from service_kit.redis import parse_sentinels
from service_kit.settings import KitSettings


def test_development_accepts_dev_defaults() -> None:
    assert KitSettings(environment="development").rabbitmq_url.startswith("amqp://guest")


def test_production_refuses_dev_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(
        ValidationError,
        match="production for: CURSOR_SECRET, DATABASE_URL, RABBITMQ_URL, SERVICE_CLIENT_SECRET",
    ):
        KitSettings()


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://app:s3cret@db/results")
    monkeypatch.setenv("RABBITMQ_URL", "amqp://app:s3cret@mq:5672/")
    monkeypatch.setenv("CURSOR_SECRET", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("SERVICE_CLIENT_SECRET", "fedcba9876543210fedcba9876543210")
    assert KitSettings().environment == "production"


def test_parse_sentinels() -> None:
    assert parse_sentinels("a:26379, b:26380,") == [("a", 26379), ("b", 26380)]
    with pytest.raises(ValueError):
        parse_sentinels("a")
    with pytest.raises(ValueError):
        parse_sentinels(" , ")


async def test_readiness_times_out_a_hung_dependency() -> None:
    readiness = Readiness(timeout_seconds=0.05)

    async def fine() -> None:
        return None

    async def hung() -> None:
        await asyncio.sleep(5)

    async def broken() -> None:
        raise ConnectionError("down")

    readiness.add("db", fine)
    readiness.add("redis", hung)
    readiness.add("broker", broken)
    ready, checks = await readiness.report()
    assert not ready
    assert checks["db"]["ok"] is True
    assert checks["redis"] == {"ok": False, "ms": checks["redis"]["ms"], "error": "timeout"}
    assert checks["broker"]["error"] == "ConnectionError"


async def test_non_critical_check_is_reported_but_keeps_the_process_ready() -> None:
    readiness = Readiness(timeout_seconds=0.05)

    async def fine() -> None:
        return None

    async def down() -> None:
        raise ConnectionError("redis down")

    readiness.add("db", fine)
    readiness.add("redis", down, critical=False)
    ready, checks = await readiness.report()
    assert ready
    assert checks["redis"]["ok"] is False and checks["redis"]["critical"] is False
