"""Delivery retries (DESIGN.md "Messaging": delayed retry tiers for transient errors).

A failed delivery is either transient (try again after the next tier's delay)
or permanent (no retry: the same request would fail the same way; record it
and dead-letter). Once every tier is spent a transient failure is
dead-lettered too.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

RETRY_DELAYS_SECONDS: tuple[int, ...] = (5, 30, 120, 600, 1800)
"""Delay before retry 1, 2, ...: quick for a blip, then spaced out so a server
down for a while is not hammered; about 43 minutes in all before dead-lettering."""


@dataclass(frozen=True, slots=True)
class SmtpReply:
    """An SMTP server refused: its reply code (RFC 5321)."""

    code: int


@dataclass(frozen=True, slots=True)
class HttpStatus:
    """A webhook receiver answered with a status that is not a success."""

    code: int


class TransportFailure(StrEnum):
    """No answer at all: the request may not have reached the other side."""

    CONNECT = "connect"
    """Refused, unreachable, or the name did not resolve."""
    TIMEOUT = "timeout"
    DISCONNECTED = "disconnected"
    """The connection dropped mid-way."""
    TLS = "tls"
    """The TLS handshake failed (often a server restarting behind a proxy)."""


Failure = SmtpReply | HttpStatus | TransportFailure


def is_transient(failure: Failure) -> bool:
    """Whether a retry may succeed.

    - SMTP 4xx transient (the server says "try later"), 5xx permanent (bad
      recipient, refused content); other codes are not failures: ValueError.
    - HTTP 408, 429 and 5xx transient; other 4xx permanent (the receiver
      refuses this request as it is); 3xx permanent too (redirects are not
      followed: `WEBHOOK_URL` needs fixing); 1xx and 2xx are not failures.
    - Transport failures are transient.
    """
    match failure:
        case SmtpReply(code):
            if 400 <= code <= 499:
                return True
            if 500 <= code <= 599:
                return False
            raise ValueError(f"SMTP reply {code} is not a failure")
        case HttpStatus(code):
            if code in (408, 429) or 500 <= code <= 599:
                return True
            if 300 <= code <= 499:
                return False
            raise ValueError(f"HTTP status {code} is not a failure")
        case TransportFailure():
            return True


def retry_delay(failed_attempts: int) -> int | None:
    """Seconds to wait after the `failed_attempts`-th failure, None once the tiers are spent."""
    if failed_attempts < 1:
        raise ValueError("failed_attempts counts from 1")
    if failed_attempts > len(RETRY_DELAYS_SECONDS):
        return None
    return RETRY_DELAYS_SECONDS[failed_attempts - 1]


def next_retry(failure: Failure, failed_attempts: int) -> int | None:
    """Seconds until the next attempt, or None: dead-letter (permanent, or tiers spent)."""
    return retry_delay(failed_attempts) if is_transient(failure) else None
