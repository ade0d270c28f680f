"""Opaque list cursors: the sort key of the last item, versioned and base64url-encoded."""

from __future__ import annotations

import base64
import binascii

import orjson
from service_kit.errors import BadRequest

_VERSION = 1


def encode_cursor(after: str) -> str:
    raw = orjson.dumps({"v": _VERSION, "after": after})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> str:
    """The sort key a cursor continues after; 400 BAD_REQUEST for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise BadRequest("The cursor is not valid.") from exc
    if not isinstance(data, dict) or data.get("v") != _VERSION:
        raise BadRequest("The cursor is not valid.")
    after = data.get("after")
    if not isinstance(after, str):
        raise BadRequest("The cursor is not valid.")
    return after
