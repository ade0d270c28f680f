"""Server-sent events as the stream writes them (the WHATWG EventSource format).

Each event is ``event:``/``id:``/``data:`` lines and a blank line; the data is
one line of JSON (orjson never writes a newline), so no event can be split
or forged by what a notification says. A comment line (``: ...``) keeps
proxies and clients from timing the connection out.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import orjson

RECONNECT_MILLIS = 3000
"""What the client waits before reconnecting (the ``retry:`` field)."""


def event(name: str, data: Any, *, event_id: int | None = None) -> bytes:
    head = f"event: {name}\n" if event_id is None else f"id: {event_id}\nevent: {name}\n"
    return head.encode() + b"data: " + orjson.dumps(data) + b"\n\n"


def comment(text: str) -> bytes:
    return f": {' '.join(text.split())}\n\n".encode()


def retry(millis: int = RECONNECT_MILLIS) -> bytes:
    return f"retry: {millis}\n\n".encode()


def parse_last_event_id(value: str | None) -> int | None:
    """The ``Last-Event-ID`` a client sends back: one of our ids (a ``seq``), or None.

    Raises ValueError for anything else: a forged or foreign id cannot be
    resumed from, and guessing would skip or repeat notifications.
    """
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ValueError("Last-Event-ID is not an id this stream sent")
    return int(text)


class RecentIds:
    """The last ``size`` ids sent down one stream, so a notification that reaches it twice
    (replayed on resume and signalled live, or caught up after a reconnect) goes once."""

    def __init__(self, size: int = 4096) -> None:
        self._order: deque[int] = deque()
        self._ids: set[int] = set()
        self._size = size
        self.highest = 0

    def add(self, seq: int) -> bool:
        """Records ``seq``; False if it was sent already."""
        if seq in self._ids:
            return False
        self._ids.add(seq)
        self._order.append(seq)
        if len(self._order) > self._size:
            self._ids.discard(self._order.popleft())
        self.highest = max(self.highest, seq)
        return True
