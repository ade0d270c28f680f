"""The notifier's event catalog: what it publishes and the queues it reads.

``make docs`` writes docs/asyncapi/notifier.yaml and the notifier's section of
docs/events.md from :data:`EVENTS`; ``tests/test_event_contracts.py`` fails
when they differ from the committed files.

The notifier publishes only commands to itself (email and webhook deliveries,
one queue per channel so a failing channel never holds up the other), and
reads results', bulk's and auth's events through its own tolerant readers
(:mod:`notifier_service.messaging.readers`).
"""

from __future__ import annotations

from service_kit.messaging.catalog import EventCatalog, Subscription
from service_kit.messaging.topology import QueueSpec

from notifier_service.contracts.deliveries import EmailDeliveryV1, WebhookDeliveryV1
from notifier_service.messaging.causes import CAUSES_QUEUE
from notifier_service.messaging.deliveries import EMAIL_QUEUE_NAME, WEBHOOK_QUEUE_NAME
from notifier_service.messaging.readers import (
    BulkJobCompletedV1,
    PasswordResetRequestedV1,
    ResultsPublishedV1,
    ResultsUpdatedV1,
    UserCreatedV1,
    UserInvitedV1,
    UserUpdatedV1,
)
from notifier_service.messaging.users import USERS_QUEUE
from notifier_service.settings import PRODUCER

# The delivery queues as the docs show them (name and bindings). The consumers
# build theirs from the settings (their retry tiers are DELIVERY_RETRY_DELAYS_SECONDS,
# messaging/deliveries.py); tests/test_event_contracts.py checks the two agree.
EMAIL_DELIVERIES_QUEUE = QueueSpec(EMAIL_QUEUE_NAME, (EmailDeliveryV1.routing_key,))
WEBHOOK_DELIVERIES_QUEUE = QueueSpec(WEBHOOK_QUEUE_NAME, (WebhookDeliveryV1.routing_key,))

EVENTS = EventCatalog(
    service=PRODUCER,
    description="notifier turns results', bulk's and auth's events into notifications: an "
    "inbox and live streams per user, email and a signed webhook. It keeps a read model of "
    "users from auth's user events, and delivers email and webhooks from commands it sends "
    "itself, one queue per channel, retried in tiers.",
    publishes=(EmailDeliveryV1, WebhookDeliveryV1),
    consumes=(
        Subscription(
            CAUSES_QUEUE,
            (
                ResultsPublishedV1,
                ResultsUpdatedV1,
                BulkJobCompletedV1,
                UserInvitedV1,
                PasswordResetRequestedV1,
            ),
        ),
        Subscription(USERS_QUEUE, (UserCreatedV1, UserUpdatedV1)),
        Subscription(EMAIL_DELIVERIES_QUEUE, (EmailDeliveryV1,)),
        Subscription(WEBHOOK_DELIVERIES_QUEUE, (WebhookDeliveryV1,)),
    ),
)
