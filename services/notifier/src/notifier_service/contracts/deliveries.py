"""The notifier's own commands: deliver these notifications by email, by webhook.

Written to the notifier's outbox in the transaction that created the
notifications (so a notification exists if and only if its deliveries are
asked for), and consumed by the notifier's delivery queues, one per channel,
so a failing channel never holds up another. Each message carries at most
``DELIVERY_BATCH_SIZE`` notifications; a delivery worker sends those not yet
sent (``deliveries.status``), so a retried or redelivered message never
sends one twice.
"""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field
from service_kit.messaging.events import Event

MAX_ITEMS = 500
"""Notifications per delivery message at most."""

_NOTIFICATION = "5d0c6a1e-2f3b-4c5d-8e9f-0a1b2c3d4e5f"


class EmailItem(BaseModel):
    """One notification to email."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    notification_id: uuid.UUID = Field(
        description="The notification to email.", examples=[_NOTIFICATION]
    )
    token: str | None = Field(
        None,
        repr=False,
        description="The invitation or reset token of an `account_invited` or "
        "`password_reset` notification (it is in no stored row); null for other kinds. "
        "A secret: never logged.",
        examples=[None],
    )


class EmailDeliveryV1(Event):
    """Email these notifications (those whose email was not sent yet)."""

    event_type = "notifier.email_delivery"
    event_version = 1
    producer = "notifier"

    items: list[EmailItem] = Field(
        min_length=1, max_length=MAX_ITEMS, description="The notifications to email."
    )


class WebhookDeliveryV1(Event):
    """POST these notifications to `WEBHOOK_URL` (those not delivered yet), signed."""

    event_type = "notifier.webhook_delivery"
    event_version = 1
    producer = "notifier"

    notification_ids: list[uuid.UUID] = Field(
        min_length=1,
        max_length=MAX_ITEMS,
        description="The notifications to deliver.",
        examples=[[_NOTIFICATION]],
    )
