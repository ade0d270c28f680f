"""The first admin, created at start from ADMIN_EMAIL / ADMIN_PASSWORD."""

from __future__ import annotations

import asyncio

from auth_service.settings import AuthSettings
from auth_service.usecases.accounts import Accounts
from auth_support import ADMIN_EMAIL, ADMIN_PASSWORD, Service, StartService, sql
from service_kit.host import component


async def test_first_start_creates_the_admin_once_across_restarts_and_replicas(
    start_service: StartService, settings: AuthSettings
) -> None:
    first = await start_service()
    # Replicas starting at once, then a restart: still one admin, one event.
    replicas = await asyncio.gather(*(start_service() for _ in range(3)))
    await start_service()

    users = await sql(settings, "SELECT email, role, active FROM auth.users")
    events = await sql(settings, "SELECT 1 FROM auth.outbox WHERE type = 'user.created'")
    assert [(u["email"], u["role"], u["active"]) for u in users] == [(ADMIN_EMAIL, "admin", True)]
    assert len(events) == 1
    for service in (first, *replicas):
        assert (await service.login(ADMIN_EMAIL, ADMIN_PASSWORD)).status_code == 200


async def test_concurrent_bootstraps_race_safely(service: Service, settings: AuthSettings) -> None:
    accounts = component(service.app, Accounts)

    created = await asyncio.gather(
        *(accounts.bootstrap_admin("second@example.edu", "second-admin-password") for _ in range(5))
    )

    assert sum(user is not None for user in created) == 1
    rows = await sql(settings, "SELECT 1 FROM auth.users WHERE email = 'second@example.edu'")
    assert len(rows) == 1


async def test_an_existing_user_with_that_email_is_left_alone(
    start_service: StartService, settings: AuthSettings
) -> None:
    await start_service()
    await sql(settings, "UPDATE auth.users SET full_name = 'Renamed', active = false")

    await start_service(admin_email="ROOT@example.edu", admin_password="a different password")

    [user] = await sql(settings, "SELECT full_name, active FROM auth.users")
    assert (user["full_name"], user["active"]) == ("Renamed", False)


async def test_an_empty_admin_password_skips_the_bootstrap(
    start_service: StartService, settings: AuthSettings
) -> None:
    await start_service(admin_password="")

    assert await sql(settings, "SELECT 1 FROM auth.users") == []
