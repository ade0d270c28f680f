"""An export file in either format as bytes, a batch of rows at a time.

The worker stores what each call returns as the next bytes of the file
(``store.files.PartWriter``), so neither format is ever held whole: the CSV
writer returns each batch's bytes, and the XLSX writer compresses into a
sink that is emptied after every batch.
"""

from __future__ import annotations

from collections.abc import Sequence

from bulk_service.domain.csv_writing import CsvWriter
from bulk_service.domain.export_rows import Cell
from bulk_service.domain.jobs import FileFormat
from bulk_service.domain.xlsx_writing import XlsxWriter


class _Taken:
    """A sink whose bytes are taken out after each batch (not seekable: zipfile then
    writes data descriptors instead of seeking back)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes, /) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


class ExportFileWriter:
    """Header, rows and end of an export file, as the bytes to append."""

    def __init__(self, file_format: FileFormat, columns: Sequence[str], sheet_name: str) -> None:
        self._columns = list(columns)
        self._csv = CsvWriter() if file_format is FileFormat.CSV else None
        self._sink = _Taken()
        self._xlsx = XlsxWriter(self._sink, sheet_name) if self._csv is None else None

    def start(self) -> bytes:
        if self._csv is not None:
            return self._csv.header(self._columns)
        assert self._xlsx is not None
        self._xlsx.write_header(self._columns)
        return self._sink.take()

    def rows(self, rows: Sequence[Sequence[Cell]]) -> bytes:
        if self._csv is not None:
            return self._csv.rows(rows)
        assert self._xlsx is not None
        self._xlsx.write_rows(rows)
        return self._sink.take()

    def finish(self) -> bytes:
        if self._xlsx is None:
            return b""
        self._xlsx.close()
        return self._sink.take()
