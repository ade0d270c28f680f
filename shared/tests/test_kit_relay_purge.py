"""The relay's purge of sent outbox rows runs as a once-across-replicas kit job."""

from __future__ import annotations

import uuid
from datetime import timedelta

from kit_support import SCHEMA
from service_kit.db import Database
from service_kit.jobs import JobLeases, PeriodicJobs
from service_kit.messaging.relay import OutboxRelay
from service_kit.settings import KitSettings
from sqlalchemy import text

INSERT = text(
    f"INSERT INTO {SCHEMA}.outbox (id, type, version, routing_key, producer, payload, "
    "occurred_at, sent_at) VALUES (:id, 'kit.probe', 1, 'kit.probe', 'kit-test', '{}', now(), "
    "now() - make_interval(hours => :sent_hours_ago))"
)


async def test_the_purge_job_deletes_only_rows_sent_before_the_retention(
    db: Database, db_settings: KitSettings
) -> None:
    old, recent = uuid.uuid4(), uuid.uuid4()
    async with db.transaction() as session:
        await session.execute(INSERT, {"id": old, "sent_hours_ago": 5})
        await session.execute(INSERT, {"id": recent, "sent_hours_ago": 0})
        await session.execute(
            text(
                f"INSERT INTO {SCHEMA}.outbox (id, type, version, routing_key, producer, "
                "payload, occurred_at) VALUES (:id, 'kit.probe', 1, 'kit.probe', 'kit-test', "
                "'{}', now() - interval '1 day')"
            ),
            {"id": uuid.uuid4()},
        )
    relay = OutboxRelay(db, db_settings, schema=SCHEMA, retention=timedelta(hours=1))
    job = relay.purge_job()
    assert job.once_across_replicas
    jobs = PeriodicJobs([job], leases=JobLeases(db, SCHEMA))

    assert await jobs.run_once(job.name) is True

    async with db.read_session(fresh=True) as session:
        left = set((await session.scalars(text(f"SELECT id FROM {SCHEMA}.outbox"))).all())
    # The unsent row stays however old it is: it has not been published yet.
    assert old not in left and recent in left and len(left) == 2
