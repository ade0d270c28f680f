"""`SMTP_URL` and `MAIL_FROM` as an operator writes them, and what is refused."""

from __future__ import annotations

import pytest
from notifier_service.domain.smtp_url import (
    SmtpSecurity,
    SmtpServer,
    parse_smtp_url,
    validate_mail_from,
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example", SmtpServer("mail.example", 25, SmtpSecurity.STARTTLS_IF_OFFERED)),
        ("smtp://127.0.0.1:1025", SmtpServer("127.0.0.1", 1025, SmtpSecurity.STARTTLS_IF_OFFERED)),
        ("smtps://mail.example", SmtpServer("mail.example", 465, SmtpSecurity.IMPLICIT_TLS)),
        ("SMTPS://Mail.Example:2465/", SmtpServer("mail.example", 2465, SmtpSecurity.IMPLICIT_TLS)),
        ("smtp://[::1]:2525", SmtpServer("::1", 2525, SmtpSecurity.STARTTLS_IF_OFFERED)),
        (
            "smtp://apikey:s3cret@smtp.example:587",
            SmtpServer("smtp.example", 587, SmtpSecurity.STARTTLS_IF_OFFERED, "apikey", "s3cret"),
        ),
        (
            "smtps://results%40school.example:p%40ss%3Aw%2Frd@smtp.example",
            SmtpServer(
                "smtp.example",
                465,
                SmtpSecurity.IMPLICIT_TLS,
                "results@school.example",
                "p@ss:w/rd",
            ),
        ),
        (
            "smtp://user:@smtp.example",
            SmtpServer("smtp.example", 25, SmtpSecurity.STARTTLS_IF_OFFERED, "user", ""),
        ),
    ],
)
def test_smtp_url_variants(url: str, expected: SmtpServer) -> None:
    assert parse_smtp_url(url) == expected


def test_the_password_is_not_in_the_repr() -> None:
    server = parse_smtp_url("smtp://user:hunter2@smtp.example")
    assert server.password == "hunter2"
    assert "hunter2" not in repr(server)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mail.example", "smtp:// .*smtps://.*not http://"),
        ("mail.example:25", "must start with smtp://"),
        ("", "not no scheme"),
        ("submission://mail.example", "must start with smtp://"),
        ("smtp://", "no host"),
        ("smtp://:25", "no host"),
        ("smtp://mail.example:99999", "port"),
        ("smtp://mail.example:abc", "port"),
        ("smtp://mail.example/inbox", "no path, query or fragment"),
        ("smtp://mail.example?starttls=off", "no path, query or fragment"),
        ("smtp://user@mail.example", "both a user and a password"),
    ],
)
def test_other_urls_are_refused_clearly(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_smtp_url(url)


def test_a_refusal_does_not_repeat_the_password() -> None:
    with pytest.raises(ValueError) as caught:
        parse_smtp_url("smtp://user:hunter2@mail.example:99999")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    ("value", "header"),
    [
        ("results@school.example", "results@school.example"),
        ("  results@school.example ", "results@school.example"),
        ("Exam Results <results@school.example>", "Exam Results <results@school.example>"),
        (
            '"Results, Office" <results@school.example>',
            '"Results, Office" <results@school.example>',
        ),
        ("noreply@localhost", "noreply@localhost"),
    ],
)
def test_mail_from_accepted(value: str, header: str) -> None:
    assert validate_mail_from(value) == header


@pytest.mark.parametrize(
    "value",
    [
        "",
        "results",
        "@school.example",
        "results@",
        "a@school.example, b@school.example",
        "Results <results@school.example>\r\nBcc: all@school.example",
        "results@school.example\nBcc: all@school.example",
        "Results <>",
    ],
)
def test_mail_from_refused(value: str) -> None:
    with pytest.raises(ValueError, match="MAIL_FROM"):
        validate_mail_from(value)
