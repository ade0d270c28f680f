"""The service host: start and stop order, API and worker processes, provided components."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from httpx import ASGITransport, AsyncClient
from kit_support import SCHEMA
from service_kit.db import Database
from service_kit.host import (
    Check,
    Kit,
    Needs,
    Parts,
    Provided,
    ServiceHost,
    component,
)
from service_kit.jobs import PeriodicJob
from service_kit.messaging.broker import EventBroker
from service_kit.messaging.relay import OutboxRelay
from service_kit.messaging.topology import QueueSpec
from service_kit.revocations import RevocationFeed
from service_kit.settings import KitSettings


@dataclass
class Journal:
    """What happened, in order."""

    entries: list[str] = field(default_factory=list)

    def note(self, entry: str) -> None:
        self.entries.append(entry)

    def index(self, entry: str) -> int:
        return self.entries.index(entry)


@dataclass(frozen=True)
class Greeter:
    greeting: str


class RecordingBackground:
    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def start(self) -> None:
        self._journal.note("background started")

    async def stop(self) -> None:
        self._journal.note("background stopped")


class RecordingServing:
    """A component of the API process only (like the notifier's stream hub)."""

    def __init__(self, journal: Journal, name: str) -> None:
        self._journal = journal
        self._name = name

    async def start(self) -> None:
        self._journal.note(f"{self._name} started")

    async def stop(self) -> None:
        self._journal.note(f"{self._name} stopped")


router = APIRouter()


@router.get("/greet")
async def greet(greeter: Annotated[Greeter, Provided(Greeter)]) -> dict[str, str]:
    return {"greeting": greeter.greeting}


@router.get("/unprovided")
async def unprovided(journal: Annotated[Journal, Provided(Journal)]) -> dict[str, str]:
    return {}


@pytest.fixture
def journal(monkeypatch: pytest.MonkeyPatch) -> Journal:
    """Records when the kit's own parts start and stop, around their real behaviour."""
    journal = Journal()

    def around(cls: type[Any], method: str, entry: str) -> None:
        original: Callable[..., Any] = getattr(cls, method)

        async def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
            journal.note(entry)
            result = original(self, *args, **kwargs)
            return await result if asyncio.iscoroutine(result) else result

        monkeypatch.setattr(cls, method, recorded)

    around(EventBroker, "start", "consumers started")
    around(EventBroker, "stop", "consumers stopped")
    around(OutboxRelay, "stop", "relay stopped")
    around(Database, "dispose", "database closed")
    original_start = OutboxRelay.start

    def start_relay(self: OutboxRelay) -> None:
        journal.note("relay started")
        original_start(self)

    monkeypatch.setattr(OutboxRelay, "start", start_relay)
    return journal


def sample_host(journal: Journal, *, fail_on_start: bool = False) -> ServiceHost[KitSettings]:
    def wire(kit: Kit[KitSettings]) -> Parts[KitSettings]:
        journal.note("wired")

        async def job() -> None:
            journal.note("job ran")

        async def on_start() -> None:
            journal.note("on_start")
            if fail_on_start:
                raise RuntimeError("bootstrap failed")

        def register(events: EventBroker) -> None:
            journal.note("consumer registered")
            events.consumer(
                QueueSpec("kit.host-sample", ("kit.host_sample",)), db=kit.db, schema=SCHEMA
            )

        async def closing() -> None:
            journal.note("client closed")

        async def always_fine() -> None:
            return None

        async def no_revocations(after: int) -> RevocationFeed:
            journal.note("revocations read")
            return RevocationFeed(revocations=[], next_after=after)

        return Parts(
            provides={Greeter: Greeter("hello")},
            consumers=[register],
            jobs=[PeriodicJob("kit-host-sample", job, 3600, first_run_after=0)],
            background=[RecordingBackground(journal)],
            serving=[RecordingServing(journal, "hub"), RecordingServing(journal, "feed")],
            readiness=[Check("extra", always_fine, critical=False)],
            on_start=[on_start],
            on_stop=[closing],
            revocations=no_revocations,
        )

    return ServiceHost(
        title="sample",
        version="1",
        settings_type=KitSettings,
        wire=wire,
        routers=[router],
        needs=Needs(schema=SCHEMA, outbox=True),
    )


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with (
        LifespanManager(app, startup_timeout=20, shutdown_timeout=20),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://sample.test") as client,
    ):
        yield client


@pytest.fixture
def host_settings(db: Database, db_settings: KitSettings) -> KitSettings:
    # ``db`` made the kit tables (outbox, inbox, job leases) in the test database.
    return db_settings


async def test_parts_start_in_order_and_stop_in_designs_order(
    journal: Journal, host_settings: KitSettings
) -> None:
    app = sample_host(journal).api_app(host_settings)
    async with running(app) as client:
        await asyncio.sleep(0.2)  # the job's first run
        assert (await client.get("/greet")).json() == {"greeting": "hello"}
        ready = (await client.get("/readyz")).json()["checks"]
        journal.note("serving")
    e = journal.index
    # Start: components, hooks, then the workers; consumers last of all.
    assert e("wired") < e("on_start") < e("relay started") < e("background started")
    assert e("background started") < e("consumer registered") < e("consumers started")
    assert e("job ran") < e("serving")
    # Access tokens are checked against the revocations from before the first request.
    assert e("on_start") < e("revocations read") < e("serving")
    # Stop: stop taking messages, then background and jobs, the relay's flush,
    # the service's own clients, and the pools last.
    assert e("serving") < e("consumers stopped") < e("background stopped") < e("relay stopped")
    assert e("relay stopped") < e("client closed") < e("database closed")
    assert set(ready) == {"database", "redis", "extra", "rabbitmq", "revocations"}
    assert ready["redis"]["critical"] is False and ready["extra"]["critical"] is False
    assert all(check["ok"] for check in ready.values())


async def test_an_api_only_process_runs_no_workers(
    journal: Journal, host_settings: KitSettings
) -> None:
    settings = host_settings.model_copy(update={"run_workers": False})
    app = sample_host(journal).api_app(settings)
    async with running(app) as client:
        await asyncio.sleep(0.2)
        assert (await client.get("/greet")).status_code == 200
        ready = (await client.get("/readyz")).json()["checks"]
    assert "consumers started" not in journal.entries
    assert "relay started" not in journal.entries
    assert "job ran" not in journal.entries
    assert "background started" not in journal.entries
    # Consumers are never even registered: an API pod needs no broker.
    assert "consumer registered" not in journal.entries
    assert "rabbitmq" not in ready


@pytest.mark.parametrize("run_workers", [True, False])
async def test_serving_components_start_in_an_api_process_after_the_revocations(
    journal: Journal, host_settings: KitSettings, run_workers: bool
) -> None:
    settings = host_settings.model_copy(update={"run_workers": run_workers})
    app = sample_host(journal).api_app(settings)
    async with running(app) as client:
        assert (await client.get("/greet")).status_code == 200
        journal.note("serving")
    e = journal.index
    # Started once the components exist and access tokens can be checked, in
    # their order, before the first request.
    assert e("on_start") < e("revocations read") < e("hub started") < e("feed started")
    assert e("feed started") < e("serving")
    # Stopped in reverse order, before the service's own clients and the pools.
    assert e("serving") < e("feed stopped") < e("hub stopped") < e("client closed")
    assert e("hub stopped") < e("database closed")
    if run_workers:
        # Before the workers, so they stop after the consumers, background and relay.
        assert e("feed started") < e("relay started") < e("consumers started")
        assert e("relay stopped") < e("feed stopped")
    else:
        assert "consumers started" not in journal.entries


async def test_a_worker_process_starts_no_serving_components(
    journal: Journal, host_settings: KitSettings
) -> None:
    app = sample_host(journal).worker_app(host_settings)
    async with running(app):
        await asyncio.sleep(0.2)
    assert "consumers started" in journal.entries
    assert not [entry for entry in journal.entries if entry.startswith(("hub ", "feed "))]


async def test_a_worker_process_serves_only_health_and_metrics(
    journal: Journal, host_settings: KitSettings
) -> None:
    settings = host_settings.model_copy(update={"run_workers": False})
    app = sample_host(journal).worker_app(settings)
    async with running(app) as client:
        await asyncio.sleep(0.2)
        assert (await client.get("/greet")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200
    # The worker runs its workers whatever RUN_WORKERS says.
    assert "consumers started" in journal.entries
    assert "job ran" in journal.entries


async def test_a_failed_start_still_closes_what_was_opened(
    journal: Journal, host_settings: KitSettings
) -> None:
    app = sample_host(journal, fail_on_start=True).api_app(host_settings)
    with pytest.raises(RuntimeError, match="bootstrap failed"):
        async with running(app):
            pass
    assert journal.entries[-2:] == ["client closed", "database closed"]
    assert "consumers started" not in journal.entries
    assert "hub started" not in journal.entries


async def test_components_are_provided_to_routes_and_tools(
    journal: Journal, host_settings: KitSettings
) -> None:
    settings = host_settings.model_copy(update={"run_workers": False})
    app = sample_host(journal).api_app(settings)
    async with running(app) as client:
        assert component(app, Greeter) == Greeter("hello")
        assert component(app, KitSettings) is settings
        assert isinstance(component(app, Database), Database)
        # A component nobody provides is a bug of the service: a 500 in the envelope.
        missing = await client.get("/unprovided")
        assert missing.status_code == 500
        assert missing.json()["error"]["code"] == "INTERNAL"


async def test_a_provided_component_must_have_the_declared_type(
    host_settings: KitSettings,
) -> None:
    def wire(_: Kit[KitSettings]) -> Parts[KitSettings]:
        return Parts(provides={Greeter: "not a greeter"})

    host = ServiceHost(title="bad", version="1", settings_type=KitSettings, wire=wire)
    app = host.api_app(host_settings.model_copy(update={"run_workers": False}))
    with pytest.raises(TypeError, match="provided Greeter is a str"):
        async with LifespanManager(app):
            pass
