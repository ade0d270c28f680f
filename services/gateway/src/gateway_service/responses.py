"""Answers the gateway writes itself, as raw ASGI messages in the error envelope."""

from __future__ import annotations

import orjson
from service_kit.context import current_request_id
from service_kit.errors import CATALOG, ErrorCode, error_body
from starlette.types import Send

_JSON = (b"content-type", b"application/json")
_CLOSE = (b"connection", b"close")


async def send_json(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    all_headers = [_JSON, (b"content-length", str(len(body)).encode())]
    if headers:
        all_headers.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(
    send: Send,
    code: ErrorCode,
    *,
    message: str | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
    close: bool = False,
) -> None:
    """Sends the envelope of ``code``; ``close`` when a request body is left unread.

    An unread body would otherwise be parsed as the next request on a kept-alive
    connection, so the connection is closed after the answer instead.
    """
    extra = list(headers or ())
    if close:
        extra.append(_CLOSE)
    body = orjson.dumps(error_body(code, current_request_id(), message))
    await send_json(send, CATALOG[code].status, body, extra)
