"""Webhook signatures: HMAC-SHA256 of `<timestamp>.<body>`, replay refused."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st
from notifier_service.domain.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    headers,
    sign,
    verify,
)

SECRET = b"whsec_test"
BODY = b'{"kind":"results_published","id":"n-1"}'
NOW = 1_765_000_000
# `printf '%s' '1765000000.{"kind":"results_published","id":"n-1"}'
#  | openssl dgst -sha256 -hmac whsec_test`
KNOWN = "ffaf76edbb605320e38e5622f6eb13b88dbb58d5091a263824500245c03db08c"


def test_signature_matches_a_vector_computed_elsewhere() -> None:
    assert sign(SECRET, NOW, BODY) == KNOWN
    by_hand = hmac.new(SECRET, f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert by_hand == KNOWN


def test_headers_carry_the_timestamp_and_its_signature() -> None:
    assert headers(SECRET, BODY, NOW + 0.9) == {
        TIMESTAMP_HEADER: str(NOW),
        SIGNATURE_HEADER: KNOWN,
    }
    assert (TIMESTAMP_HEADER, SIGNATURE_HEADER) == ("X-Signature-Timestamp", "X-Signature-SHA256")


def test_a_signed_request_verifies_with_any_header_case() -> None:
    signed = headers(SECRET, BODY, NOW)
    assert verify(SECRET, signed, BODY, NOW)
    lower = {name.lower(): value for name, value in signed.items()}
    assert verify(SECRET, lower, BODY, NOW + 299)
    upper = {name.upper(): value.upper() for name, value in signed.items()}
    assert verify(SECRET, upper, BODY, NOW)


def test_a_tampered_body_fails() -> None:
    signed = headers(SECRET, BODY, NOW)
    assert not verify(SECRET, signed, BODY.replace(b"n-1", b"n-2"), NOW)
    assert not verify(SECRET, signed, BODY + b" ", NOW)


def test_a_changed_timestamp_fails() -> None:
    signed = headers(SECRET, BODY, NOW)
    assert not verify(SECRET, {**signed, TIMESTAMP_HEADER: str(NOW + 1)}, BODY, NOW)


def test_another_secret_fails() -> None:
    assert not verify(b"other", headers(SECRET, BODY, NOW), BODY, NOW)


def test_an_old_request_is_refused_even_with_a_good_signature() -> None:
    signed = headers(SECRET, BODY, NOW)
    assert verify(SECRET, signed, BODY, NOW + 300)
    assert not verify(SECRET, signed, BODY, NOW + 301)
    assert not verify(SECRET, signed, BODY, NOW + 3600, tolerance_seconds=600)
    assert not verify(SECRET, signed, BODY, NOW - 301)  # from the future


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {SIGNATURE_HEADER: KNOWN},
        {TIMESTAMP_HEADER: str(NOW)},
        {TIMESTAMP_HEADER: f"{NOW}.0", SIGNATURE_HEADER: KNOWN},
        {TIMESTAMP_HEADER: f"-{NOW}", SIGNATURE_HEADER: KNOWN},
        {TIMESTAMP_HEADER: "١٧٦٥٠٠٠٠٠٠", SIGNATURE_HEADER: KNOWN},  # non-ASCII digits
        {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: "sha256=" + KNOWN},
        {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: KNOWN[:-1]},
        {TIMESTAMP_HEADER: str(NOW), SIGNATURE_HEADER: "é" * 64},
    ],
)
def test_missing_or_malformed_headers_fail(bad: dict[str, str]) -> None:
    assert not verify(SECRET, bad, BODY, NOW)


@given(
    body=st.binary(max_size=256),
    secret=st.binary(min_size=1, max_size=64),
    timestamp=st.integers(min_value=0, max_value=2**40),
)
def test_sign_is_hmac_sha256_of_timestamp_dot_body(
    body: bytes, secret: bytes, timestamp: int
) -> None:
    expected = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    assert sign(secret, timestamp, body) == expected
    assert verify(secret, headers(secret, body, timestamp), body, timestamp)
