"""Webhooks to `WEBHOOK_URL` (API.md "Notifications"): one signed POST per notification.

One shared ``httpx.AsyncClient`` keeps connections alive between posts; at
most ``WEBHOOK_CONCURRENCY`` requests are in flight. Redirects are not
followed: a receiver that moved answers 3xx, a permanent failure that tells
the operator to fix `WEBHOOK_URL` (following it would send signed bodies
wherever a redirect points).

The body is ``{"id", "type": "notification.created", "notification": {...}}``
with the notification as the API shows it plus its ``user_id``. ``id`` is the
notification's id, the same on every attempt, so a receiver drops a
duplicate. The signature covers ``<timestamp>.<body>``
(:func:`notifier_service.domain.webhooks.headers`), signed anew per attempt.
A webhook never carries a token: the stored notification holds none.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson

from notifier_service.delivery.outcomes import SendFailure
from notifier_service.domain import webhooks
from notifier_service.domain.retry import HttpStatus, TransportFailure
from notifier_service.settings import NotifierSettings

log = logging.getLogger(__name__)

EVENT_TYPE = "notification.created"


@dataclass(frozen=True, slots=True)
class WebhookNotification:
    """A notification as the webhook shows it (API.md's Notification plus ``user_id``)."""

    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


def webhook_body(notification: WebhookNotification) -> bytes:
    """The JSON body POSTed for ``notification`` (compact, UTF-8)."""
    return orjson.dumps(
        {
            "id": str(notification.id),
            "type": EVENT_TYPE,
            "notification": {
                "id": str(notification.id),
                "user_id": str(notification.user_id),
                "kind": notification.kind,
                "title": notification.title,
                "body": notification.body,
                "data": notification.data,
                "created_at": notification.created_at.isoformat(),
                "read_at": None
                if notification.read_at is None
                else notification.read_at.isoformat(),
            },
        }
    )


class WebhookPoster:
    """POSTs signed notifications to one URL over a shared keep-alive client."""

    def __init__(
        self,
        url: str,
        secret: bytes,
        *,
        timeout_seconds: float = 10.0,
        concurrency: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if concurrency < 1:
            raise ValueError("webhook concurrency must be at least 1")
        self._url = url
        self._secret = secret
        self._clock = clock
        self._concurrency = concurrency
        self._in_flight = asyncio.Semaphore(concurrency)
        self._client = httpx.AsyncClient(
            timeout=timeout_seconds,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )

    @classmethod
    def from_settings(cls, settings: NotifierSettings) -> WebhookPoster | None:
        """The poster `WEBHOOK_URL` asks for, or None when webhooks are off."""
        if settings.webhook_url is None:
            return None
        return cls(
            settings.webhook_url,
            settings.webhook_secret.get_secret_value().encode(),
            timeout_seconds=settings.webhook_timeout_seconds,
            concurrency=settings.webhook_concurrency,
        )

    @property
    def size(self) -> int:
        """How many posts may be in flight at once."""
        return self._concurrency

    async def post(self, notification: WebhookNotification) -> SendFailure | None:
        """POSTs one notification; None on a 2xx, else the classified failure."""
        body = webhook_body(notification)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "exam-results-notifier",
            **webhooks.headers(self._secret, body, self._clock()),
        }
        async with self._in_flight:
            try:
                response = await self._client.post(self._url, content=body, headers=headers)
                await response.aclose()
            except httpx.TransportError as exc:
                failure = _transport(exc)
            else:
                if 200 <= response.status_code <= 299:
                    return None
                failure = SendFailure(
                    HttpStatus(response.status_code), f"webhook {response.status_code}"
                )
        log.warning("webhook of notification %s failed: %s", notification.id, failure.detail)
        return failure

    async def aclose(self) -> None:
        await self._client.aclose()


def _transport(exc: httpx.TransportError) -> SendFailure:
    if isinstance(exc, httpx.TimeoutException):
        kind = TransportFailure.TIMEOUT
    elif isinstance(exc, httpx.ConnectError):
        tls = isinstance(exc.__cause__, ssl.SSLError) or isinstance(exc.__context__, ssl.SSLError)
        kind = TransportFailure.TLS if tls else TransportFailure.CONNECT
    else:
        kind = TransportFailure.DISCONNECTED
    return SendFailure(kind, f"webhook {kind.value}: {type(exc).__name__}")
