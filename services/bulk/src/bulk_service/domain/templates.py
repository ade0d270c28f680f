"""Empty marks files for the import template endpoint: the header row and nothing else.

Built with the export writers so a template is encoded exactly like an export
(BOM, CRLF, formula safety in CSV; inline strings in XLSX) and a user who
fills it in gets back a file our readers accept. Header names are subject
codes and fixed names; like any cell, one starting with ``=``, ``+``, ``-``,
``@``, tab or CR gets the CSV ``'`` prefix rather than becoming a formula.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from bulk_service.domain.csv_writing import CsvWriter
from bulk_service.domain.xlsx_writing import XlsxWriter

TEMPLATE_SHEET_NAME = "Marks"


def template_csv(columns: Sequence[str]) -> bytes:
    """A CSV holding only the header row ``columns``."""
    return CsvWriter().header(columns)


def template_xlsx(columns: Sequence[str], sheet_name: str = TEMPLATE_SHEET_NAME) -> bytes:
    """A one-sheet workbook holding only the header row ``columns`` (bold)."""
    sink = io.BytesIO()
    with XlsxWriter(sink, sheet_name) as writer:
        writer.write_header(columns)
    return sink.getvalue()
