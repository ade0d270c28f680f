"""Events leave through the outbox, reach RabbitMQ, and match their documented schemas."""

from __future__ import annotations

from pathlib import Path

from auth_service.contracts import EVENTS, UserCreatedV1, UserInvitedV1, UserUpdatedV1
from auth_support import PASSWORD, EventTap, Service, bearer, sql
from service_kit.messaging.docs import stale_event_docs, stale_message
from service_kit.messaging.envelope import EventEnvelope
from service_kit.messaging.events import example_payload

REPO_ROOT = Path(__file__).resolve().parents[3]


async def test_user_created_reaches_a_rabbitmq_queue_through_the_outbox(
    service: Service, admin_token: str, event_tap: EventTap
) -> None:
    user = await service.new_user(admin_token, "evt@example.edu", role="student")

    envelope = await event_tap.next("user.created", id=user["id"])

    parsed = EventEnvelope.model_validate({k: v for k, v in envelope.items() if k != "_amqp"})
    assert parsed.producer == "auth"
    assert parsed.version == 1
    assert envelope["_amqp"]["routing_key"] == "user.created"
    assert envelope["_amqp"]["message_id"] == str(parsed.id)
    assert envelope["_amqp"]["delivery_mode"] == 2  # persistent
    data = UserCreatedV1.model_validate(envelope["data"])
    assert data.model_dump(mode="json", exclude={"version"}) == user
    assert data.version == 1
    assert "password_hash" not in envelope["data"]
    [row] = await sql(service.settings, "SELECT sent_at FROM auth.outbox WHERE id = $1", parsed.id)
    assert row["sent_at"] is not None


async def test_user_updated_carries_the_whole_user_with_a_growing_version(
    service: Service, admin_token: str, event_tap: EventTap
) -> None:
    user = await service.new_user(admin_token, "upd@example.edu")
    path = f"/api/v1/users/{user['id']}"
    await service.client.patch(path, json={"full_name": "First"}, headers=bearer(admin_token))
    await service.client.patch(path, json={"full_name": "First"}, headers=bearer(admin_token))
    await service.client.patch(path, json={"role": "admin"}, headers=bearer(admin_token))

    first = UserUpdatedV1.model_validate((await event_tap.next("user.updated", version=2))["data"])
    second = UserUpdatedV1.model_validate((await event_tap.next("user.updated", version=3))["data"])

    assert (first.full_name, first.role) == ("First", "examiner")
    assert (second.full_name, second.role) == ("First", "admin")
    # The no-op patch changed nothing and published nothing.
    rows = await sql(service.settings, "SELECT 1 FROM auth.outbox WHERE type = 'user.updated'")
    assert len(rows) == 2


async def test_the_event_is_written_in_the_transaction_of_the_change(
    service: Service, admin_token: str
) -> None:
    await service.new_user(admin_token, "tx@example.edu")
    conflict = await service.client.post(
        "/api/v1/users",
        json={"email": "TX@example.edu", "full_name": "Tx", "role": "admin", "password": PASSWORD},
        headers=bearer(admin_token),
    )

    assert conflict.status_code == 409
    rows = await sql(
        service.settings,
        "SELECT payload->>'email' AS email FROM auth.outbox WHERE type = 'user.created'",
    )
    assert sorted(r["email"] for r in rows) == ["root@example.edu", "tx@example.edu"]


def test_invited_event_schema_adds_token_and_expiry() -> None:
    assert set(UserInvitedV1.model_fields) - set(UserCreatedV1.model_fields) == {
        "token",
        "expires_at",
    }


def test_committed_event_docs_are_what_the_catalog_generates() -> None:
    stale = stale_event_docs(EVENTS, REPO_ROOT)
    assert not stale, stale_message(stale)


def test_every_published_event_is_written_by_auth_and_its_example_is_valid() -> None:
    for event in EVENTS.publishes:
        assert event.producer == "auth" and event.routing_key == event.event_type
        example = example_payload(event)
        assert set(example) == set(event.model_fields), event.event_type
        assert event.model_validate(example).model_dump(mode="json") == example
