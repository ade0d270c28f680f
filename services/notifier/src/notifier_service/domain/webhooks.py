"""Webhook signatures (API.md "Notifications"): HMAC-SHA256 over `<timestamp>.<body>`.

The timestamp is part of what is signed, so a captured request cannot be
replayed later: a receiver refuses a timestamp older than its tolerance, and
changing the timestamp breaks the signature. :func:`verify` is what a receiver
(and our tests) run.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Signature-SHA256"
"""Hex HMAC-SHA256 of `<timestamp>.<body>` under `WEBHOOK_SECRET`."""
TIMESTAMP_HEADER = "X-Signature-Timestamp"
"""Unix seconds when the request was signed."""
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `b"<timestamp>." + body` under `secret`."""
    return hmac.new(secret, b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def headers(secret: bytes, body: bytes, now: float) -> dict[str, str]:
    """The signature headers of a webhook POST of `body` signed at `now` (Unix seconds)."""
    timestamp = int(now)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def verify(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """Whether `body` with these headers was signed with `secret` within the tolerance.

    Header names are matched without regard to case (HTTP). The timestamp must be
    plain decimal digits and no further than `tolerance_seconds` from `now`,
    either way (a clock ahead by more is as suspect as a replay). The signatures
    are compared in constant time, so a forger learns nothing from timing.
    """
    by_name = {name.lower(): value for name, value in headers.items()}
    stamp = by_name.get(TIMESTAMP_HEADER.lower(), "").strip()
    given = by_name.get(SIGNATURE_HEADER.lower(), "").strip().lower()
    if not (stamp.isascii() and stamp.isdigit()) or not given.isascii():
        return False
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(given.encode(), sign(secret, timestamp, body).encode())
