"""The purge job removes only what can no longer be used."""

from __future__ import annotations

from datetime import timedelta

from auth_service.jobs.purge import purge_expired
from auth_support import ADMIN_EMAIL, ADMIN_PASSWORD, Service, sql
from service_kit.db import Database


async def test_purge_removes_long_expired_tokens_and_their_families_only(
    service: Service,
) -> None:
    settings = service.settings
    old = await service.tokens(ADMIN_EMAIL, ADMIN_PASSWORD)
    just_expired = await service.tokens(ADMIN_EMAIL, ADMIN_PASSWORD)
    live = await service.tokens(ADMIN_EMAIL, ADMIN_PASSWORD)
    rotated = (await service.refresh(live["refresh_token"])).json()
    await sql(
        settings,
        """UPDATE auth.refresh_tokens SET expires_at = now() - interval '2 days'
           WHERE family_id = (
               SELECT family_id FROM auth.refresh_tokens ORDER BY issued_at LIMIT 1
           )""",
    )
    await sql(
        settings,
        """UPDATE auth.refresh_tokens SET expires_at = now() - interval '1 hour'
           WHERE token_hash = (SELECT token_hash FROM auth.refresh_tokens
                               ORDER BY issued_at OFFSET 1 LIMIT 1)""",
    )
    await sql(settings, "UPDATE auth.refresh_families SET created_at = now() - interval '30 days'")

    db = Database(settings)
    try:
        purged = await purge_expired(db, family_age=timedelta(days=15))
    finally:
        await db.dispose()

    assert (purged.tokens, purged.families) == (1, 1)
    assert await sql(settings, "SELECT 1 FROM auth.refresh_tokens") != []
    assert len(await sql(settings, "SELECT 1 FROM auth.refresh_families")) == 2
    # The rotated (still valid) token is kept, so its reuse is still detected.
    reused = await service.refresh(live["refresh_token"])
    assert reused.json()["error"]["code"] == "AUTH_REFRESH_REUSED"
    assert (await service.refresh(old["refresh_token"])).status_code == 401
    assert (await service.refresh(just_expired["refresh_token"])).status_code == 401
    assert rotated["refresh_token"]
