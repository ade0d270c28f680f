"""How replicas tell each other about new and read notifications: Postgres NOTIFY.

A fan-out's transaction sends, on :data:`CHANNEL`, the ``seq`` ranges of the
notifications it inserted (``n:12-40,45-45``); a read or read-all sends the
user whose unread count changed (``r:<user id>``). NOTIFY is delivered only
if the transaction commits, and to every replica that LISTENs (the stream hub
of each), so a notification created on any replica reaches a stream held by
any other. Ranges, not user ids: a fan-out to thousands of students is a few
ranges, and a replica asks only for the users whose streams it holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

CHANNEL = "notifier_notifications"

MAX_PAYLOAD_BYTES = 7900
"""Postgres refuses a NOTIFY payload of 8000 bytes or more."""


@dataclass(frozen=True, slots=True)
class NewNotifications:
    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True, slots=True)
class UnreadChanged:
    user_id: uuid.UUID


Signal = NewNotifications | UnreadChanged


def ranges_of(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted, merged inclusive ranges covering exactly ``seqs``."""
    ranges: list[tuple[int, int]] = []
    for seq in sorted(set(seqs)):
        if ranges and seq == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def new_payloads(seqs: Iterable[int]) -> Iterator[str]:
    """``n:`` payloads covering ``seqs``, each under :data:`MAX_PAYLOAD_BYTES`."""
    parts: list[str] = []
    size = 2
    for lo, hi in ranges_of(seqs):
        part = f"{lo}-{hi}"
        if parts and size + len(part) + 1 > MAX_PAYLOAD_BYTES:
            yield "n:" + ",".join(parts)
            parts, size = [], 2
        parts.append(part)
        size += len(part) + 1
    if parts:
        yield "n:" + ",".join(parts)


def parse(payload: str) -> Signal | None:
    """The signal in a payload, or None for anything malformed (ignored, never fatal)."""
    kind, _, rest = payload.partition(":")
    try:
        if kind == "n":
            ranges = []
            for part in rest.split(","):
                lo, _, hi = part.partition("-")
                low, high = int(lo), int(hi)
                if low > high:
                    return None
                ranges.append((low, high))
            return NewNotifications(tuple(ranges)) if ranges else None
        if kind == "r":
            return UnreadChanged(uuid.UUID(rest))
    except ValueError:
        return None
    return None


async def announce_new(session: AsyncSession, seqs: Sequence[int]) -> None:
    for payload in new_payloads(seqs):
        await session.execute(
            text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
        )


async def announce_unread_changed(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(
        text("SELECT pg_notify(:channel, :payload)"),
        {"channel": CHANNEL, "payload": f"r:{user_id}"},
    )
