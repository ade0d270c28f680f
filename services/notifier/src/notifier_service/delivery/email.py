"""Email through `SMTP_URL` (API.md "Notifications"): a small pool of reused SMTP connections.

Each of the `SMTP_CONNECTIONS` connections sends many messages, one at a time
(SMTP is one envelope at a time per connection): opening a connection costs a
TCP and often a TLS handshake plus EHLO and AUTH, more than sending a message.
A connection idle for a while is checked with NOOP before use (servers drop
idle clients) and reopened if it is gone; one that fails mid-send is closed
and reopened by the next send. aiosmtplib itself sends RSET after a refused
envelope, so the connection stays usable for the next message.

Every message is multipart/alternative (plain text, then HTML) with a
``Message-ID`` derived from the notification id: if a crash between the
server's 250 and our record makes us send it again, a receiver can drop the
duplicate. Nothing here logs a message body, a link or a token.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr

import aiosmtplib

from notifier_service.delivery.outcomes import SendFailure
from notifier_service.domain.retry import SmtpReply, TransportFailure
from notifier_service.domain.smtp_url import SmtpSecurity, SmtpServer
from notifier_service.domain.texts import Email
from notifier_service.settings import NotifierSettings

log = logging.getLogger(__name__)

IDLE_CHECK_SECONDS = 10.0
"""A connection unused for longer is asked NOOP before it carries a message."""

_ADDRESS_REFUSED = 553
"""RFC 5321 "mailbox name not allowed": an address we cannot send to at all."""


@dataclass(frozen=True, slots=True)
class OutgoingEmail:
    """One email to one person, for one notification."""

    notification_id: uuid.UUID
    to_address: str
    to_name: str
    content: Email
    """Subject, text and HTML (the HTML and text hold the link, maybe a token: never logged)."""

    def __repr__(self) -> str:
        return f"OutgoingEmail(notification_id={self.notification_id})"


def message_id(notification_id: uuid.UUID, domain: str) -> str:
    """The ``Message-ID`` of a notification's email: the same for every send of it."""
    return f"<notification-{notification_id}@{domain}>"


_FOLD_AT = 78
"""RFC 5322: lines SHOULD stay within 78 characters; longer headers are folded."""


def _subject(subject: str) -> str:
    """The Subject's value: as it is when short ASCII, else RFC 2047 words, folded."""
    if subject.isascii() and len(subject) + len("Subject: ") <= _FOLD_AT:
        return subject
    return Header(subject, "utf-8", header_name="Subject").encode(linesep="\r\n")


def _base64_lines(text: str) -> str:
    # encodebytes: lines of 76 characters (RFC 2045), "\n"-terminated.
    encoded = base64.encodebytes(text.encode("utf-8")).decode("ascii")
    return encoded.rstrip("\n").replace("\n", "\r\n")


def mime_message(*, headers: tuple[tuple[str, str], ...], text: str, html: str) -> bytes:
    """A multipart/alternative message (plain text, then HTML), CRLF line ends.

    Written out directly: the email package's message classes parse and fold
    every header again while flattening, and that cost more CPU than the SMTP
    exchange itself (about 1.2 ms a message, ``scripts/bench_notifier.py``).
    Every value given is already a valid header value (ASCII, or UTF-8 for an
    SMTPUTF8 address; no line break); the bodies are base64, so no line of
    theirs is long and none can end the part early.
    """
    boundary = f"=_{uuid.uuid4().hex[:24]}"  # base64 has no "_": "=_" never starts a body line
    lines = [f"{name}: {value}" for name, value in headers]
    lines += [
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "",
        f"--{boundary}",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: base64",
        "",
        _base64_lines(text),
        f"--{boundary}",
        'Content-Type: text/html; charset="utf-8"',
        "Content-Transfer-Encoding: base64",
        "",
        _base64_lines(html),
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode("utf-8")


class _ConnectFailed(Exception):
    def __init__(self, failure: SendFailure) -> None:
        super().__init__(failure.detail)
        self.failure = failure


class _PooledConnection:
    """One SMTP connection, opened on first use and reopened when it is gone."""

    def __init__(self, factory: Callable[[], aiosmtplib.SMTP], idle_check_seconds: float) -> None:
        self._factory = factory
        self._idle_check = idle_check_seconds
        self._client: aiosmtplib.SMTP | None = None
        self._last_used = 0.0
        self.opened = 0
        """Connections opened so far (tests and the reuse figure)."""

    async def send(self, message: bytes, sender: str, recipient: str) -> SendFailure | None:
        try:
            client = await self._ready()
        except _ConnectFailed as failed:
            return failed.failure
        # An address beyond ASCII needs the server's SMTPUTF8 (RFC 6531).
        options = [] if sender.isascii() and recipient.isascii() else ["SMTPUTF8"]
        try:
            await client.sendmail(sender, [recipient], message, mail_options=options)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            code = exc.recipients[0].code if exc.recipients else 550
            return _reply(code, "recipient refused")
        except aiosmtplib.SMTPResponseException as exc:
            return _reply(exc.code, f"{type(exc).__name__.removeprefix('SMTP')}")
        except aiosmtplib.SMTPNotSupported:
            return SendFailure(SmtpReply(_ADDRESS_REFUSED), "address needs SMTPUTF8")
        except ValueError:
            # aiosmtplib refuses an address it cannot put in an envelope.
            return SendFailure(SmtpReply(_ADDRESS_REFUSED), "address not sendable")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self.close()
            return _transport(exc)
        finally:
            self._last_used = time.monotonic()
        return None

    async def _ready(self) -> aiosmtplib.SMTP:
        client = self._client
        if client is not None and client.is_connected:
            if time.monotonic() - self._last_used <= self._idle_check:
                return client
            try:
                await client.noop()
                return client
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                self.close()
        self.close()
        client = self._factory()
        try:
            await client.connect()
        except aiosmtplib.SMTPResponseException as exc:
            # Refused at greeting, STARTTLS or AUTH: about the server or our
            # credentials, not this message, so it is worth retrying (an
            # operator fixes the password; the message waits in the tiers).
            client.close()
            raise _ConnectFailed(
                SendFailure(TransportFailure.CONNECT, f"smtp connect refused: {exc.code}")
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            client.close()
            raise _ConnectFailed(_transport(exc)) from None
        self.opened += 1
        self._client = client
        return client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def quit(self) -> None:
        client, self._client = self._client, None
        if client is None or not client.is_connected:
            return
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()


def _reply(code: int, what: str) -> SendFailure:
    if not 400 <= code <= 599:
        # Not a reply code (aiosmtplib's -1 and the like): the exchange broke.
        return SendFailure(TransportFailure.DISCONNECTED, f"smtp {what}: no valid reply")
    return SendFailure(SmtpReply(code), f"smtp {code} {what}")


def _transport(exc: BaseException) -> SendFailure:
    if isinstance(exc, ssl.SSLError):
        kind = TransportFailure.TLS
    elif isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        kind = TransportFailure.TIMEOUT
    elif isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        kind = TransportFailure.DISCONNECTED
    elif isinstance(exc, aiosmtplib.SMTPConnectError | OSError):
        kind = TransportFailure.CONNECT
    else:
        kind = TransportFailure.DISCONNECTED
    return SendFailure(kind, f"smtp {kind.value}: {type(exc).__name__}")


class SmtpMailer:
    """Sends :class:`OutgoingEmail` over at most ``connections`` reused SMTP connections."""

    def __init__(
        self,
        server: SmtpServer,
        *,
        mail_from: str,
        connections: int = 1,
        timeout_seconds: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
        idle_check_seconds: float = IDLE_CHECK_SECONDS,
    ) -> None:
        if connections < 1:
            raise ValueError("an SMTP pool needs at least one connection")
        self._server = server
        name, self._sender = parseaddr(mail_from)
        self._from_header = formataddr((name, self._sender), charset="utf-8")
        self._domain = self._sender.rpartition("@")[2] or "localhost"
        self._timeout = timeout_seconds
        self._tls_context = tls_context
        self._all = [
            _PooledConnection(self._new_client, idle_check_seconds) for _ in range(connections)
        ]
        self._free: asyncio.Queue[_PooledConnection] = asyncio.Queue()
        for connection in self._all:
            self._free.put_nowait(connection)

    @classmethod
    def from_settings(cls, settings: NotifierSettings) -> SmtpMailer | None:
        """The mailer `SMTP_URL` asks for, or None when email is off."""
        server = settings.smtp_server()
        if server is None:
            return None
        return cls(
            server,
            mail_from=settings.mail_from,
            connections=settings.smtp_connections,
            timeout_seconds=settings.smtp_timeout_seconds,
        )

    @property
    def size(self) -> int:
        """How many messages can be in flight at once (one per connection)."""
        return len(self._all)

    @property
    def connections_opened(self) -> int:
        return sum(c.opened for c in self._all)

    def _new_client(self) -> aiosmtplib.SMTP:
        implicit = self._server.security is SmtpSecurity.IMPLICIT_TLS
        return aiosmtplib.SMTP(
            hostname=self._server.host,
            port=self._server.port,
            username=self._server.username,
            password=self._server.password,
            use_tls=implicit,
            # None: STARTTLS when the server offers it (smtp://); never with implicit TLS.
            start_tls=False if implicit else None,
            tls_context=self._tls_context,
            timeout=self._timeout,
        )

    def message(self, mail: OutgoingEmail) -> bytes:
        """The MIME message, as sent: From `MAIL_FROM`, To the person, text and HTML
        alternatives (UTF-8, base64), names and subject RFC 2047-encoded where not ASCII.

        See :func:`mime_message` for why it is written out here rather than by
        the email package's message classes.
        """
        for value in (mail.to_name, mail.to_address, mail.content.subject):
            if "\r" in value or "\n" in value:
                # A line break in a header value would start a header of its own.
                raise ValueError("a header value holds a line break")
        return mime_message(
            headers=(
                ("From", self._from_header),
                ("To", formataddr((mail.to_name, mail.to_address), charset="utf-8")),
                ("Subject", _subject(mail.content.subject)),
                ("Date", formatdate(usegmt=True)),
                ("Message-ID", message_id(mail.notification_id, self._domain)),
                # RFC 3834: no auto-replies (vacation notices) to a machine's message.
                ("Auto-Submitted", "auto-generated"),
            ),
            text=mail.content.text,
            html=mail.content.html,
        )

    async def send(self, mail: OutgoingEmail) -> SendFailure | None:
        """Sends one email; None when the server accepted it, else the classified failure."""
        try:
            message = self.message(mail)
        except ValueError:
            # A header the email package refuses (a line break in a name or address).
            return SendFailure(SmtpReply(_ADDRESS_REFUSED), "recipient not addressable")
        connection = await self._free.get()
        try:
            failure = await connection.send(message, self._sender, mail.to_address)
        finally:
            self._free.put_nowait(connection)
        if failure is not None:
            log.warning("email of notification %s failed: %s", mail.notification_id, failure.detail)
        return failure

    async def aclose(self) -> None:
        """Says QUIT on every open connection (closes it if the server does not answer)."""
        await asyncio.gather(*(c.quit() for c in self._all))
