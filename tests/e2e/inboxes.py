"""Where the suite's notifications go in the end-to-end tests: a real SMTP server
(aiosmtpd) that keeps every message, and a real HTTP receiver that keeps every
webhook and checks its signature (API.md: HMAC-SHA256 of `<timestamp>.<body>`)."""

from __future__ import annotations

import email
import email.policy
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import orjson
from aiosmtpd.controller import Controller
from notifier_service.domain.webhooks import verify
from service_kit.testing import free_port, serve_in_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


@dataclass
class Mail:
    to: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, "no plain text part"
        return str(part.get_content())

    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None, "no HTML part"
        return str(part.get_content())

    def link(self, route: str) -> str:
        """The link to ``route`` (e.g. ``/reset-password``) in the plain text."""
        found = re.search(r"https?://\S*" + re.escape(route) + r"\S*", self.text())
        assert found is not None, f"no {route} link in: {self.text()}"
        return found.group(0)


class MailSink:
    """An SMTP server on a fixed port that can be stopped and started again (an outage)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.mails: list[Mail] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.mails.append(Mail(list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[Mail]:
        with self._lock:
            return [m for m in self.mails if address.lower() in (t.lower() for t in m.to)]


@dataclass
class Hook:
    body: dict[str, Any]
    signature_valid: bool


@dataclass
class WebhookReceiver:
    secret: bytes
    url: str = ""
    hooks: list[Hook] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def for_user(self, user_id: str) -> list[Hook]:
        with self.lock:
            return [h for h in self.hooks if h.body["notification"].get("user_id") == user_id]


def start_webhook_receiver(secret: bytes) -> tuple[WebhookReceiver, Callable[[], None]]:
    receiver = WebhookReceiver(secret)

    async def receive(request: Request) -> Response:
        body = await request.body()
        valid = verify(secret, dict(request.headers), body, now=time.time())
        with receiver.lock:
            receiver.hooks.append(Hook(orjson.loads(body), valid))
        return Response(status_code=204 if valid else 401)

    app = Starlette(routes=[Route("/hooks", receive, methods=["POST"])])
    base, stop = serve_in_thread(app, "webhook-receiver")
    receiver.url = f"{base}/hooks"
    return receiver, stop
