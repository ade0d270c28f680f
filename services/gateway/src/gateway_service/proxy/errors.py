"""What can go wrong in an exchange with an upstream: one type per cause.

The proxy maps them to answers (ADR 0003, 0008): a connect error, a timeout, a
disconnect or a protocol error before the answer is 503 UPSTREAM_UNAVAILABLE;
after the answer started, the client's response is cut short.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """The exchange with the upstream failed; its connection is closed."""


class UpstreamConnectError(UpstreamError):
    """Refused, unreachable or unresolvable: nothing was sent."""


class UpstreamTimeout(UpstreamError):
    """The exchange outlived its budget, or the upstream was silent for too long."""


class UpstreamDisconnected(UpstreamError):
    """The connection closed or broke before the response was complete."""

    def __init__(self, message: str, *, response_started: bool) -> None:
        super().__init__(message)
        self.response_started = response_started


class UpstreamProtocolError(UpstreamError):
    """The upstream's bytes are not a valid HTTP/1.1 response."""


class RequestBodyError(UpstreamError):
    """Reading the client's body failed while it was forwarded (the cause is chained)."""
