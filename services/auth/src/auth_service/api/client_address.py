"""The client address a sign-in is counted against."""

from __future__ import annotations

import ipaddress


def first_forwarded_address(header: str | None) -> str | None:
    """The first ``X-Forwarded-For`` entry if it is an IP address, else None.

    Only meaningful behind the gateway, which overwrites the header with the
    real peer; anywhere else a client could pick its own address, which is why
    ``TRUST_FORWARDED_FOR`` can turn this off.
    """
    if not header:
        return None
    first = header.split(",", 1)[0].strip()
    try:
        return str(ipaddress.ip_address(first))
    except ValueError:
        return None


def client_address(
    forwarded_for: str | None, peer: str | None, *, trust_forwarded_for: bool
) -> str:
    if trust_forwarded_for:
        forwarded = first_forwarded_address(forwarded_for)
        if forwarded is not None:
            return forwarded
    return peer or "unknown"
