"""The SMTP mailer against a real aiosmtpd server: implicit TLS, STARTTLS when offered,
login, the classification of refusals, and a dropped connection reopened."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import AuthResult, LoginPassword
from delivery_support import self_signed_tls, smtp_sink
from notifier_service.delivery.email import OutgoingEmail, SmtpMailer
from notifier_service.domain.retry import SmtpReply, TransportFailure
from notifier_service.domain.smtp_url import parse_smtp_url
from notifier_service.domain.texts import Email

MAIL_FROM = "Exam results <results@school.example>"


def an_email(to: str = "ann@example.edu") -> OutgoingEmail:
    return OutgoingEmail(
        uuid.uuid4(),
        to,
        "Ann Lee",
        Email(subject="Results", text="Hello Ann,\n\nsee", html="<p>Hello Ann,</p>"),
    )


def only_ann(_server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any) -> Any:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"ann", b"p@ss:/")
    return AuthResult(success=ok, handled=False)


async def test_smtps_speaks_tls_from_the_first_byte(tmp_path: Path) -> None:
    server_tls, client_tls = self_signed_tls(tmp_path)
    with smtp_sink(started=False) as sink:
        sink.start(ssl_context=server_tls)
        mailer = SmtpMailer(
            parse_smtp_url(f"smtps://127.0.0.1:{sink.port}"),
            mail_from=MAIL_FROM,
            tls_context=client_tls,
        )
        try:
            assert await mailer.send(an_email()) is None
        finally:
            await mailer.aclose()
    [mail] = sink.received
    assert mail.tls


async def test_smtp_upgrades_with_starttls_when_offered_and_logs_in(tmp_path: Path) -> None:
    server_tls, client_tls = self_signed_tls(tmp_path)
    with smtp_sink(started=False) as sink:
        sink.start(
            tls_context=server_tls,
            require_starttls=True,
            authenticator=only_ann,
            auth_required=True,
        )
        url = f"smtp://ann:p%40ss%3A%2F@127.0.0.1:{sink.port}"
        mailer = SmtpMailer(parse_smtp_url(url), mail_from=MAIL_FROM, tls_context=client_tls)
        wrong = SmtpMailer(
            parse_smtp_url(f"smtp://ann:nope@127.0.0.1:{sink.port}"),
            mail_from=MAIL_FROM,
            tls_context=client_tls,
        )
        try:
            assert await mailer.send(an_email()) is None
            refused = await wrong.send(an_email())
        finally:
            await mailer.aclose()
            await wrong.aclose()
    [mail] = sink.received
    assert mail.tls and mail.authenticated
    # Refused at login: about the server or the credentials, retried, password not shown.
    assert refused is not None and refused.failure is TransportFailure.CONNECT
    assert refused.transient and "nope" not in refused.detail


async def test_without_starttls_offered_smtp_sends_in_the_clear() -> None:
    with smtp_sink() as sink:
        mailer = SmtpMailer(parse_smtp_url(sink.url), mail_from=MAIL_FROM)
        try:
            assert await mailer.send(an_email()) is None
        finally:
            await mailer.aclose()
    assert not sink.received[0].tls


async def test_refusals_are_classified_and_the_connection_stays_usable() -> None:
    with smtp_sink() as sink:
        sink.refuse["gone-"] = "550 5.1.1 no such user"
        sink.refuse["later-"] = "451 4.3.0 try again later"
        mailer = SmtpMailer(parse_smtp_url(sink.url), mail_from=MAIL_FROM, connections=1)
        try:
            gone = await mailer.send(an_email("gone-1@example.edu"))
            later = await mailer.send(an_email("later-1@example.edu"))
            fine = await mailer.send(an_email("ann@example.edu"))
            opened = mailer.connections_opened
        finally:
            await mailer.aclose()
    assert gone is not None and gone.failure == SmtpReply(550) and not gone.transient
    assert later is not None and later.failure == SmtpReply(451) and later.transient
    assert fine is None
    assert opened == 1
    assert len(sink.received) == 1


async def test_nothing_listening_is_a_transient_connect_failure() -> None:
    with smtp_sink(started=False) as sink:
        mailer = SmtpMailer(parse_smtp_url(sink.url), mail_from=MAIL_FROM, timeout_seconds=5)
        try:
            failed = await mailer.send(an_email())
        finally:
            await mailer.aclose()
    assert failed is not None and failed.failure is TransportFailure.CONNECT and failed.transient


async def test_an_idle_connection_the_server_dropped_is_reopened() -> None:
    with smtp_sink() as sink:
        mailer = SmtpMailer(
            parse_smtp_url(sink.url),
            mail_from=MAIL_FROM,
            connections=1,
            timeout_seconds=5,
            idle_check_seconds=0,  # NOOP before every reuse
        )
        try:
            assert await mailer.send(an_email()) is None
            sink.stop()
            sink.start()
            assert await mailer.send(an_email()) is None
            opened = mailer.connections_opened
        finally:
            await mailer.aclose()
    assert opened == 2
    assert len(sink.received) == 2
    assert sink.received[0].peer != sink.received[1].peer


async def test_names_and_subjects_beyond_ascii_arrive_intact_and_line_breaks_are_refused() -> None:
    with smtp_sink() as sink:
        mailer = SmtpMailer(
            parse_smtp_url(f"smtp://127.0.0.1:{sink.port}"),
            mail_from="Résultats d'examen <results@school.example>",
        )
        mail = OutgoingEmail(
            uuid.uuid4(),
            "zoe@example.edu",
            "Zoë Ørsted-Łukasz",
            Email(subject="Résultats publiés: Ελληνικά", text="Bonjour Zoë", html="<p>Zoë</p>"),
        )
        injected = OutgoingEmail(
            uuid.uuid4(),
            "eve@example.edu",
            "Eve\r\nBcc: victim@example.edu",
            Email(subject="Results", text="x", html="<p>x</p>"),
        )
        try:
            assert await mailer.send(mail) is None
            refused = await mailer.send(injected)
        finally:
            await mailer.aclose()
    [received] = sink.received
    message = received.message
    assert str(message["Subject"]) == "Résultats publiés: Ελληνικά"
    assert message["To"].addresses[0].display_name == "Zoë Ørsted-Łukasz"
    assert message["From"].addresses[0].display_name == "Résultats d'examen"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content().strip() == "Bonjour Zoë"
    assert refused is not None and not refused.transient
