"""The emails as written on the wire: standard MIME that any reader parses back."""

from __future__ import annotations

import email
import email.policy
import uuid
from email.message import EmailMessage

from notifier_service.delivery.email import OutgoingEmail, SmtpMailer, mime_message
from notifier_service.domain.smtp_url import parse_smtp_url
from notifier_service.domain.texts import Email

MAILER = SmtpMailer(parse_smtp_url("smtp://127.0.0.1:25"), mail_from="Results <r@school.example>")


def parsed(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_a_message_parses_back_with_both_alternatives() -> None:
    notification = uuid.uuid4()
    text = "Hello Ann,\n\n" + "A long line of text " * 40 + "\n--=_fake--\n"
    html = "<p>Hello &lt;Ann&gt;</p>" * 50
    raw = MAILER.message(
        OutgoingEmail(notification, "ann@example.edu", "Ann Lee", Email("Results", text, html))
    )
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    message = parsed(raw)
    assert message.get_content_type() == "multipart/alternative"
    assert message["Message-ID"] == f"<notification-{notification}@school.example>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert str(message["To"]) == "Ann Lee <ann@example.edu>"
    plain = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    assert plain is not None and rich is not None
    assert plain.get_content().replace("\r\n", "\n") == text
    assert rich.get_content() == html
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_long_and_non_ascii_subjects_are_folded_and_encoded() -> None:
    for subject in ("Results published: " + "Advanced Physics " * 12, "Résultats: Ελληνικά"):
        raw = mime_message(headers=(("Subject", _subject_of(subject)),), text="x", html="<p>x</p>")
        assert raw.split(b"\r\n\r\n")[0].isascii()
        assert all(len(line) <= 78 for line in raw.split(b"\r\n\r\n")[0].split(b"\r\n"))
        assert str(parsed(raw)["Subject"]) == subject


def _subject_of(subject: str) -> str:
    from notifier_service.delivery.email import _subject

    return _subject(subject)
