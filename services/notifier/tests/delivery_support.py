"""Real outside servers for the delivery tests: an SMTP sink (aiosmtpd) and a webhook
receiver (uvicorn) that checks signatures, plus rows to deliver.

Both run in threads of their own, as the outside world would: the notifier
talks to them over TCP. What they receive is kept for the test to read.
"""

from __future__ import annotations

import collections
import email
import email.policy
import ipaddress
import ssl
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import orjson
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from notifier_service.domain import webhooks
from service_kit.db import Database
from service_kit.testing import free_port, serve_in_thread
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# -- SMTP -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    peer: Any
    """The client's (host, port): one per SMTP connection."""
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool
    """Whether the connection was encrypted (implicit TLS or STARTTLS)."""
    authenticated: bool


@dataclass
class SmtpSink:
    """An aiosmtpd handler that keeps every message; ``refuse`` maps an address prefix to
    the reply its RCPT gets (e.g. ``"550 5.1.1 no such user"``)."""

    port: int = field(default_factory=free_port)
    received: list[ReceivedMail] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    _controller: Controller | None = None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        for prefix, reply in self.refuse.items():
            if address.startswith(prefix):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(
            ReceivedMail(
                session.peer,
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                message,
                # STARTTLS sets session.ssl; implicit TLS shows on the transport.
                tls=session.ssl is not None
                or server.transport.get_extra_info("sslcontext") is not None,
                authenticated=bool(session.authenticated),
            )
        )
        return "250 OK queued"

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self, **server_options: Any) -> None:
        """Listens; ``server_options`` go to aiosmtpd (``ssl_context``: implicit TLS;
        ``tls_context``: STARTTLS offered; ``authenticator``...)."""
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **server_options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def by_message_id(self) -> dict[str, int]:
        return dict(collections.Counter(str(m.message["Message-ID"]) for m in self.received))


@contextmanager
def smtp_sink(*, started: bool = True) -> Iterator[SmtpSink]:
    sink = SmtpSink()
    if started:
        sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh certificate for 127.0.0.1, and a client context
    that trusts it (and only it)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp.crt", directory / "smtp.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


# -- webhooks -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedPost:
    headers: dict[str, str]
    body: bytes
    verified: bool
    status: int

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class WebhookReceiver:
    """Verifies each POST's signature (401 if it fails); answers the statuses planned for
    a notification id first (``plan``), then 200."""

    secret: bytes
    url: str = ""
    posts: list[ReceivedPost] = field(default_factory=list)
    plan: dict[str, collections.deque[int]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, notification_id: uuid.UUID, *statuses: int) -> None:
        self.plan[str(notification_id)] = collections.deque(statuses)

    def for_notification(self, notification_id: uuid.UUID) -> list[ReceivedPost]:
        with self.lock:
            return [p for p in self.posts if p.json()["id"] == str(notification_id)]


@contextmanager
def webhook_receiver(secret: bytes) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(secret)

    async def receive(request: Request) -> Response:
        body = await request.body()
        verified = webhooks.verify(secret, dict(request.headers), body, time.time())
        status = 401
        if verified:
            queued = receiver.plan.get(orjson.loads(body)["id"])
            status = queued.popleft() if queued else 200
        with receiver.lock:
            receiver.posts.append(ReceivedPost(dict(request.headers), body, verified, status))
        return Response(status_code=status)

    app = Starlette(routes=[Route("/hooks", receive, methods=["POST"])])
    base, stop = serve_in_thread(app, "webhook-receiver")
    receiver.url = f"{base}/hooks"
    try:
        yield receiver
    finally:
        stop()


# -- rows to deliver ------------------------------------------------------------------


async def add_user(
    db: Database, *, email: str | None = None, full_name: str = "Ann Lee", active: bool = True
) -> uuid.UUID:
    user_id = uuid.uuid4()
    async with db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO notifier.users (id, email, full_name, role, active, version) "
                "VALUES (:id, :email, :name, 'student', :active, 1)"
            ),
            {
                "id": user_id,
                "email": email or f"user-{user_id.hex[:8]}@example.edu",
                "name": full_name,
                "active": active,
            },
        )
    return user_id


async def add_notification(
    db: Database,
    user_id: uuid.UUID,
    *,
    kind: str = "results_published",
    facts: dict[str, Any] | None = None,
    channels: Sequence[str] = ("email", "webhook"),
) -> uuid.UUID:
    """A stored notification with pending deliveries on ``channels``, as the fan-out leaves it."""
    notification_id = uuid.uuid4()
    if facts is None:
        facts = {"exam_id": str(uuid.uuid4()), "exam_code": "PHYS-1", "exam_name": "Physics"}
    async with db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO notifier.notifications (id, user_id, kind, cause, title, body, data, "
                "facts) VALUES (:id, :user_id, :kind, :cause, :title, 'Have a look.', "
                "CAST(:data AS jsonb), CAST(:facts AS jsonb))"
            ),
            {
                "id": notification_id,
                "user_id": user_id,
                "kind": kind,
                "cause": f"test:{notification_id}",
                "title": f"About {kind}",
                "data": orjson.dumps({"exam_code": "PHYS-1"}).decode(),
                "facts": orjson.dumps(facts).decode(),
            },
        )
        for channel in channels:
            await session.execute(
                text(
                    "INSERT INTO notifier.deliveries (notification_id, channel) "
                    "VALUES (:id, :channel)"
                ),
                {"id": notification_id, "channel": channel},
            )
    return notification_id


async def deliveries(db: Database, channel: str) -> dict[uuid.UUID, dict[str, Any]]:
    async with db.transaction() as session:
        result = await session.execute(
            text("SELECT * FROM notifier.deliveries WHERE channel = :channel"),
            {"channel": channel},
        )
        return {row["notification_id"]: dict(row) for row in result.mappings()}


async def attempts(db: Database, channel: str) -> dict[uuid.UUID, list[str]]:
    """Each notification's attempt outcomes on ``channel``, in attempt order."""
    async with db.transaction() as session:
        result = await session.execute(
            text(
                "SELECT notification_id, outcome FROM notifier.delivery_attempts "
                "WHERE channel = :channel ORDER BY notification_id, attempt"
            ),
            {"channel": channel},
        )
        found: dict[uuid.UUID, list[str]] = collections.defaultdict(list)
        for row in result:
            found[row[0]].append(row[1])
        return dict(found)
