"""Which delivery failures are retried, and after how long."""

from __future__ import annotations

import pytest
from notifier_service.domain.retry import (
    RETRY_DELAYS_SECONDS,
    HttpStatus,
    SmtpReply,
    TransportFailure,
    is_transient,
    next_retry,
    retry_delay,
)


@pytest.mark.parametrize("code", [421, 450, 451, 452, 454, 499])
def test_smtp_4xx_is_transient(code: int) -> None:
    assert is_transient(SmtpReply(code))


@pytest.mark.parametrize("code", [500, 501, 550, 552, 553, 554, 599])
def test_smtp_5xx_is_permanent(code: int) -> None:
    assert not is_transient(SmtpReply(code))


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504, 599])
def test_http_408_429_and_5xx_are_transient(code: int) -> None:
    assert is_transient(HttpStatus(code))


@pytest.mark.parametrize("code", [400, 401, 403, 404, 405, 410, 413, 415, 422, 301, 302, 307])
def test_other_http_4xx_and_redirects_are_permanent(code: int) -> None:
    assert not is_transient(HttpStatus(code))


@pytest.mark.parametrize(
    "failure",
    [
        TransportFailure.CONNECT,
        TransportFailure.TIMEOUT,
        TransportFailure.DISCONNECTED,
        TransportFailure.TLS,
    ],
)
def test_transport_failures_are_transient(failure: TransportFailure) -> None:
    assert is_transient(failure)


def test_every_transport_failure_is_listed_above() -> None:
    assert len(TransportFailure) == 4


@pytest.mark.parametrize(
    "success",
    [
        SmtpReply(250),
        SmtpReply(354),
        SmtpReply(221),
        HttpStatus(200),
        HttpStatus(204),
        HttpStatus(100),
    ],
)
def test_a_success_is_not_classified(success: SmtpReply | HttpStatus) -> None:
    with pytest.raises(ValueError, match="not a failure"):
        is_transient(success)


def test_tiers_grow_and_end() -> None:
    assert RETRY_DELAYS_SECONDS == (5, 30, 120, 600, 1800)
    assert [retry_delay(n) for n in range(1, 7)] == [5, 30, 120, 600, 1800, None]
    with pytest.raises(ValueError):
        retry_delay(0)


def test_next_retry_dead_letters_permanent_failures_and_spent_tiers() -> None:
    assert next_retry(SmtpReply(451), 1) == 5
    assert next_retry(TransportFailure.TIMEOUT, 3) == 120
    assert next_retry(HttpStatus(503), 5) == 1800
    assert next_retry(HttpStatus(503), 6) is None
    assert next_retry(SmtpReply(550), 1) is None
    assert next_retry(HttpStatus(404), 1) is None
