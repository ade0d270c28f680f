"""Opaque list cursors: signed, versioned, bound to the list they came from.

A cursor carries the sort key of the last item of a page; the next page starts
strictly after it (keyset pagination). Clients only hand it back, so whatever
comes back is untrusted input that goes straight into a query's WHERE clause.
A cursor is therefore

    base64url(version byte | tag | JSON array of the key), without padding

where ``tag`` is HMAC-SHA256, truncated to 128 bits, over the version, the
list's *scope* (its name and filters) and the key. Garbled, forged, truncated
or over-long cursors, cursors of another version, and a cursor of one list or
filter set replayed on another all fail the same way: 400 ``BAD_REQUEST``,
never a 500 and never a silently wrong page. The key's shape is then checked
by the caller's parser, which guards against a key of an older layout signed
under the same version.

The secret is ``CURSOR_SECRET`` (:class:`service_kit.settings.KitSettings`);
routes get a codec through :data:`service_kit.pagination.Cursors`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar

import orjson

from service_kit.errors import BadRequest

VERSION = 1
TAG_BYTES = 16
MAX_CURSOR_LENGTH = 512
"""Characters; real keys (a timestamp and a UUID, a rank and a student number) need ~150."""

K = TypeVar("K")
KeyPart = str | int
ScopePart = str | int | uuid.UUID | None

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def invalid_cursor() -> BadRequest:
    return BadRequest("The cursor is not valid; start the list again without one.")


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    # The alphabet is checked first: urlsafe_b64decode silently drops stray characters.
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class ListCursor:
    """Encodes and decodes the cursors of one list under one set of filters."""

    __slots__ = ("_key", "_scope")

    def __init__(self, key: bytes, scope: bytes) -> None:
        self._key = key
        self._scope = scope

    def _tag(self, version: int, payload: bytes) -> bytes:
        # JSON has no raw newline, so the separators keep scope and key apart.
        message = bytes([version]) + b"\n" + self._scope + b"\n" + payload
        return hmac.new(self._key, message, hashlib.sha256).digest()[:TAG_BYTES]

    def encode(self, key: Sequence[KeyPart]) -> str:
        """The cursor of a page that ends at the item whose sort key is ``key``."""
        payload = orjson.dumps(list(key))
        return _b64encode(bytes([VERSION]) + self._tag(VERSION, payload) + payload)

    def decode(self, cursor: str | None, parse: Callable[[list[object]], K]) -> K | None:
        """The key ``cursor`` continues after, checked by ``parse``; None without a cursor.

        ``parse`` gets the key's JSON values and returns them typed; it raises
        ``ValueError``, ``TypeError`` or ``IndexError`` on a wrong shape (a tuple
        unpacking of the wrong length does). Anything wrong is 400 BAD_REQUEST.
        """
        if cursor is None:
            return None
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise invalid_cursor()
        try:
            raw = _b64decode(cursor)
        except (ValueError, binascii.Error) as exc:
            raise invalid_cursor() from exc
        if len(raw) <= 1 + TAG_BYTES or raw[0] != VERSION:
            raise invalid_cursor()
        tag, payload = raw[1 : 1 + TAG_BYTES], raw[1 + TAG_BYTES :]
        if not hmac.compare_digest(tag, self._tag(VERSION, payload)):
            raise invalid_cursor()
        try:
            values = orjson.loads(payload)
            if not isinstance(values, list):
                raise TypeError("a cursor key is a JSON array")
            return parse(values)
        except (orjson.JSONDecodeError, ValueError, TypeError, IndexError) as exc:
            raise invalid_cursor() from exc


class CursorCodec:
    """Makes :class:`ListCursor` s under one secret (``CURSOR_SECRET``)."""

    __slots__ = ("_key",)

    def __init__(self, secret: str | bytes) -> None:
        self._key = secret.encode() if isinstance(secret, str) else secret

    def scoped(self, list_name: str, *filters: ScopePart) -> ListCursor:
        """Cursors of ``list_name`` under ``filters`` (path ids and query filters, in a
        fixed order): valid only for the same list with the same filters."""
        return ListCursor(self._key, orjson.dumps([list_name, *filters]))
