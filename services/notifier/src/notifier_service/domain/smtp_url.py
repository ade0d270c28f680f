"""`SMTP_URL` and `MAIL_FROM` (API.md "Configuration an operator sets"), read once at start.

`smtp://host[:port]` speaks plain SMTP and upgrades with STARTTLS when the
server offers it (port 25 by default); `smtps://host[:port]` is TLS from the
first byte (port 465 by default). `user:password@` is optional and
percent-decoded, so a password may hold `@`, `:` or `/` as `%40`, `%3A`, `%2F`.
Errors never repeat the URL: it may hold a password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.headerregistry import Address
from email.utils import formataddr, getaddresses
from enum import StrEnum
from urllib.parse import unquote, urlsplit


class SmtpSecurity(StrEnum):
    """How the connection is protected."""

    STARTTLS_IF_OFFERED = "starttls_if_offered"
    """`smtp://`: plain connection, upgraded with STARTTLS when the server offers it."""
    IMPLICIT_TLS = "implicit_tls"
    """`smtps://`: TLS from the first byte."""


_SCHEMES = {
    "smtp": (SmtpSecurity.STARTTLS_IF_OFFERED, 25),
    "smtps": (SmtpSecurity.IMPLICIT_TLS, 465),
}


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where and how to send email."""

    host: str
    port: int
    security: SmtpSecurity
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    """Kept out of the repr, so a logged settings object does not show it."""


def parse_smtp_url(url: str) -> SmtpServer:
    """The server `SMTP_URL` names; ValueError (without the URL) for anything else."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(
            "SMTP_URL must start with smtp:// (STARTTLS when offered) or smtps:// "
            f"(implicit TLS), not {scheme + '://' if scheme else 'no scheme'}"
        )
    security, default_port = _SCHEMES[scheme]
    if not parts.hostname:
        raise ValueError("SMTP_URL has no host")
    try:
        port = parts.port or default_port
    except ValueError:
        raise ValueError("SMTP_URL has a port that is not a number from 1 to 65535") from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("SMTP_URL takes no path, query or fragment: only user:password@host:port")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if (username is None) != (password is None):
        raise ValueError("SMTP_URL must have both a user and a password, or neither")
    return SmtpServer(parts.hostname, port, security, username, password)


def validate_mail_from(value: str) -> str:
    """`MAIL_FROM` as a From header (`Name <addr@domain>` or `addr@domain`), or ValueError.

    Refuses line breaks (a header injection), several addresses, and anything
    that is not `local@domain`.
    """
    if any(c in value for c in "\r\n"):
        raise ValueError("MAIL_FROM must be on one line")
    found = getaddresses([value.strip()])
    if len(found) != 1 or not found[0][1]:
        raise ValueError("MAIL_FROM must be one address, e.g. Results <results@school.example>")
    name, address = found[0]
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in address):
        raise ValueError("MAIL_FROM must be an address of the form name@domain")
    try:
        Address(addr_spec=address)
    except (ValueError, IndexError) as exc:
        raise ValueError("MAIL_FROM is not a valid email address") from exc
    return formataddr((name, address)) if name else address
