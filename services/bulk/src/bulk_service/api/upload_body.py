"""Reading an upload from the request as a stream: a raw body or a multipart field ``file``.

The body is never held whole and never written to a local disk (Starlette's
``request.form()`` spools big files to a temporary file): a raw body is
passed on chunk by chunk as it arrives, and multipart is parsed
incrementally with python-multipart's push parser, handing on the bytes of
the ``file`` field only. ``MAX_UPLOAD_BYTES`` is counted on the file's bytes
while they stream (and on ``Content-Length`` before anything is read).

A multipart body must end with its closing boundary (``--boundary--``):
python-multipart's ``finalize`` does not check that, so the parser's ``end``
callback is watched, and a body that stops before it (a client or proxy cut
off mid-file) is refused with 400 instead of being stored as a shorter file.
The refusal is raised by the bytes' iterator, inside the transaction that
stores the parts, so nothing of the upload is kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import Request
from python_multipart.multipart import MultipartParser, parse_options_header
from service_kit.errors import BadRequest, ErrorCode, ServiceError, UnsupportedMediaType

from bulk_service.domain.jobs import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, FileFormat

FILE_FIELD = "file"
_GENERIC_TYPES = {"", "application/octet-stream", "application/vnd.ms-excel", "text/plain"}
"""Part types browsers give a spreadsheet file whatever it holds (Windows with Excel
installed labels a .csv as application/vnd.ms-excel): the file name decides."""


class PayloadTooLarge(ServiceError):
    code = ErrorCode.PAYLOAD_TOO_LARGE


@dataclass(frozen=True, slots=True)
class Upload:
    format: FileFormat
    file_name: str | None
    chunks: AsyncIterator[bytes]


def _format_of(media_type: str) -> FileFormat | None:
    media_type = media_type.strip().lower()
    if media_type in (CSV_MEDIA_TYPE, "application/csv"):
        return FileFormat.CSV
    if media_type == XLSX_MEDIA_TYPE:
        return FileFormat.XLSX
    return None


def _format_of_name(name: str | None) -> FileFormat | None:
    lowered = (name or "").lower()
    if lowered.endswith(".csv"):
        return FileFormat.CSV
    if lowered.endswith(".xlsx"):
        return FileFormat.XLSX
    return None


def _unsupported() -> UnsupportedMediaType:
    return UnsupportedMediaType(
        f"Upload a CSV ({CSV_MEDIA_TYPE}) or an Excel workbook ({XLSX_MEDIA_TYPE}), "
        f"as the body or as the multipart field '{FILE_FIELD}'."
    )


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The file is larger than the limit of {limit} bytes.")


def check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit + 64 * 1024:
        # Multipart framing adds a little; a body this much bigger cannot fit.
        raise _too_large(limit)


async def read_upload(request: Request, limit: int) -> Upload:
    """The upload's format, name and bytes; 415 for any other type, 413 past ``limit``
    (raised while the bytes stream, by the iterator), 400 for broken multipart."""
    check_declared_length(request, limit)
    header = request.headers.get("content-type", "")
    media_type, options = parse_options_header(header)
    kind = media_type.decode("latin-1").lower()
    if kind == "multipart/form-data":
        boundary = options.get(b"boundary")
        if not boundary:
            raise BadRequest("The multipart body has no boundary.")
        return await _multipart(request, boundary, limit)
    file_format = _format_of(kind)
    if file_format is None:
        raise _unsupported()
    return Upload(file_format, None, _limited(request.stream(), limit))


async def _limited(chunks: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        if chunk:
            yield chunk


class _PartState:
    def __init__(self) -> None:
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[str, str] = {}
        self.in_file = False
        self.seen_file = False
        self.file_name: str | None = None
        self.media_type = ""
        self.out: list[bytes] = []
        self.complete = False
        """The closing boundary was read."""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[self.header_field.decode("latin-1").lower()] = self.header_value.decode(
            "utf-8", "replace"
        )
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get("content-disposition", ""))
        name = options.get(b"name", b"").decode("utf-8", "replace")
        self.in_file = name == FILE_FIELD and not self.seen_file
        if self.in_file:
            self.seen_file = True
            filename = options.get(b"filename")
            self.file_name = filename.decode("utf-8", "replace") if filename else None
            media_type, _ = parse_options_header(self.headers.get("content-type", ""))
            self.media_type = media_type.decode("latin-1").lower()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.out.append(data[start:end])

    def on_part_end(self) -> None:
        self.in_file = False
        self.headers = {}

    def on_end(self) -> None:
        self.complete = True


async def _multipart(request: Request, boundary: bytes, limit: int) -> Upload:
    state = _PartState()
    parser = MultipartParser(
        boundary,
        callbacks={
            "on_header_field": state.on_header_field,
            "on_header_value": state.on_header_value,
            "on_header_end": state.on_header_end,
            "on_headers_finished": state.on_headers_finished,
            "on_part_data": state.on_part_data,
            "on_part_end": state.on_part_end,
            "on_end": state.on_end,
        },
    )
    body = request.stream()
    # Read until the file part's headers are known (its type decides 415).
    pending: list[bytes] = []
    ended = False
    while not state.seen_file:
        chunk = await anext(body, None)
        if chunk is None:
            ended = True
            break
        _feed(parser, chunk)
        pending.extend(state.out)
        state.out.clear()
    if not state.seen_file:
        raise BadRequest(f"The multipart body has no field '{FILE_FIELD}'.")
    file_format = _format_of(state.media_type)
    if file_format is None and state.media_type in _GENERIC_TYPES:
        file_format = _format_of_name(state.file_name)
    if file_format is None:
        raise _unsupported()

    async def file_bytes() -> AsyncIterator[bytes]:
        for piece in pending:
            yield piece
        if not ended:
            async for chunk in body:
                _feed(parser, chunk)
                for piece in state.out:
                    yield piece
                state.out.clear()
        parser.finalize()
        if not state.complete:
            raise BadRequest(
                "The multipart body ends before its closing boundary: the upload was cut off."
            )
        for piece in state.out:
            yield piece
        state.out.clear()

    return Upload(file_format, state.file_name, _limited(file_bytes(), limit))


def _feed(parser: MultipartParser, chunk: bytes) -> None:
    try:
        parser.write(chunk)
    except Exception as exc:  # python-multipart raises its own errors for broken framing
        raise BadRequest("The multipart body is malformed.") from exc
