"""A push-style streaming CSV reader with bounded memory.

The upload arrives in chunks (an HTTP stream, a Postgres large object), so the
reader is *fed*: :meth:`CsvReader.feed` takes the next bytes and returns the
rows those bytes completed, :meth:`CsvReader.finish` returns the rest.  What it
holds between two calls is the row being built (bounded by
:class:`ReadLimits`), a decoder's few pending bytes and at most one held-back
character, never the file.

Decisions (API.md "Bulk jobs"):

* Encoding: UTF-8 with or without BOM, or UTF-16 LE/BE *with* BOM (Excel's
  "Unicode text").  Anything else is :attr:`FileProblem.ENCODING` naming the
  row of the first bad byte; a NUL character (a binary file, UTF-16 without
  BOM) is :attr:`FileProblem.NOT_TEXT` naming its row.
* Separator: comma, semicolon or tab, whichever splits the header (the first
  non-blank line) into the most cells outside quotes; ties and a one-column
  header go to comma, then semicolon.
* Framing is RFC 4180 with the usual leniency (as Python's ``csv``): a quote
  opens a quoted cell only as the cell's first character; elsewhere it is
  text, and text after a closing quote is appended to the cell.  CRLF, LF and
  a lone CR end a record; a record spanning lines (a quoted newline) is one
  row.
* Row numbers count records, the header being 1, *including* blank records,
  so they match what a spreadsheet user sees.  Trailing cells that are empty
  or whitespace only are removed; a record left with no cells (a blank line,
  ``,,,``) is skipped but keeps its number.  Other cells are returned as
  written, not stripped.
* Limits: more than ``max_columns`` cells up to the last non-blank one is
  :attr:`FileProblem.TOO_WIDE`; a cell past ``max_cell_chars`` or an
  unfinished record past ``max_row_chars`` is
  :attr:`FileProblem.CELL_TOO_LONG`, checked while buffering.  An unclosed
  quote at the end is :attr:`FileProblem.MALFORMED`; no non-blank row at all
  is :attr:`FileProblem.EMPTY`.
* A reader that raised :class:`FileRejected` is finished; do not feed it.
"""

from __future__ import annotations

import codecs
import re
from enum import Enum, auto

from .sheets import FileProblem, FileRejected, ReadLimits, SheetRow

__all__ = ["CsvReader"]

# Undecodable bytes are replaced by this lone surrogate, which a strict UTF-8
# or UTF-16 decoder can never produce otherwise: the text decoded before the
# bad byte is kept, so the row of the bad byte can be named.
_BAD_BYTE = "\udc80"
_ERROR_HANDLER = "bulk_service.csv_reading.mark"


def _mark_bad_bytes(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return _BAD_BYTE, error.end


codecs.register_error(_ERROR_HANDLER, _mark_bad_bytes)

_SEPARATORS = (",", ";", "\t")
_LINE_END = re.compile(r"\r\n?|\n")
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class _State(Enum):
    """Where the parser stands inside the current record."""

    CELL_START = auto()
    """Before a cell's first character (a quote here opens a quoted cell)."""
    UNQUOTED = auto()
    """Inside an unquoted cell: text up to the next separator or line end."""
    QUOTED = auto()
    """Inside quotes: text up to the next quote (``""`` is one quote)."""
    AFTER_QUOTE = auto()
    """After a closing quote: any text up to the separator is appended."""


class CsvReader:
    """Turns CSV bytes, fed in chunks of any size, into :class:`SheetRow` values."""

    def __init__(self, limits: ReadLimits = ReadLimits()) -> None:
        self._limits = limits
        self._bytes_read = 0
        self._head = b""  # the first bytes, until the encoding is known
        self._decoder: codecs.IncrementalDecoder | None = None
        self._separator: str | None = None
        self._cell_end: re.Pattern[str] | None = None  # the state machine's scan
        self._strict_line: re.Pattern[str] | None = None  # fast path for quoted lines
        self._strict_cell: re.Pattern[str] | None = None
        self._pending = ""  # text not parsed yet (header wait, held-back char)
        # The record being built.
        self._row = 1  # its number
        self._cells: list[str] = []
        self._parts: list[str] = []  # pieces of the current cell
        self._cell_len = 0
        self._row_len = 0
        self._state = _State.CELL_START
        self._rows_out = 0

    @property
    def bytes_read(self) -> int:
        """Bytes fed so far (for a progress bar)."""
        return self._bytes_read

    @property
    def separator(self) -> str | None:
        """``","``, ``";"`` or ``"\\t"`` once the header has been seen."""
        return self._separator

    def feed(self, chunk: bytes) -> list[SheetRow]:
        """The rows this chunk completes (perhaps none)."""
        self._bytes_read += len(chunk)
        if self._decoder is None:
            self._head += chunk
            if len(self._head) < 2:
                return []
            chunk, self._head = self._head, b""
            self._decoder = self._new_decoder(chunk)
        return self._take(self._decoder.decode(chunk), final=False)

    def finish(self) -> list[SheetRow]:
        """The rows left once the whole file has been fed."""
        chunk = b""
        if self._decoder is None:
            chunk, self._head = self._head, b""
            self._decoder = self._new_decoder(chunk)
        rows = self._take(self._decoder.decode(chunk, final=True), final=True)
        if self._rows_out == 0:
            raise FileRejected(FileProblem.EMPTY, "The file is empty: it has no header row.")
        return rows

    # -- bytes to text ---------------------------------------------------------

    @staticmethod
    def _new_decoder(head: bytes) -> codecs.IncrementalDecoder:
        # "utf-16" reads the BOM and picks the byte order; "utf-8-sig" drops
        # a UTF-8 BOM if there is one (even split across chunks).
        encoding = "utf-16" if head[:2] in _UTF16_BOMS else "utf-8-sig"
        return codecs.getincrementaldecoder(encoding)(errors=_ERROR_HANDLER)

    def _take(self, text: str, *, final: bool) -> list[SheetRow]:
        bad = text.find(_BAD_BYTE)
        nul = text.find("\x00")
        if bad < 0 and nul < 0:
            return self._consume(text, final=final)
        cut = min(i for i in (bad, nul) if i >= 0)
        # Parse what comes before the problem so the current row is its row.
        self._consume(text[:cut], final=False, hold=False)
        if cut == bad:
            raise FileRejected(
                FileProblem.ENCODING,
                f"Row {self._row}: the file is neither UTF-8 nor UTF-16 with a byte-order mark"
                " (first bad byte on this row); save it as CSV UTF-8.",
                row=self._row,
            )
        raise FileRejected(
            FileProblem.NOT_TEXT,
            f"Row {self._row}: the file holds a NUL byte; it is not a text (CSV) file.",
            row=self._row,
        )

    # -- text to rows ----------------------------------------------------------

    def _consume(self, text: str, *, final: bool, hold: bool = True) -> list[SheetRow]:
        buf = self._pending + text if self._pending else text
        self._pending = ""
        if self._separator is None:
            found = self._find_header(buf, final=final)
            if found is None:
                return []
            buf = found
        held = ""
        if hold and not final and buf.endswith("\r"):
            # A CR may be the first half of a CRLF: it waits for the next character.
            held = "\r"
            buf = buf[:-1]
        rows = self._parse(buf, hold=hold and not final)
        self._pending += held
        if final:
            self._close(rows)
        return rows

    def _find_header(self, buf: str, *, final: bool) -> str | None:
        """Choose the separator once the header is whole; the text from the header on.

        Blank lines before the header are counted (row numbers) and dropped.
        While the header is incomplete, keeps ``buf`` pending and returns None.
        """
        start = 0
        first = len(buf) - len(buf.lstrip())  # first non-blank character
        for match in _LINE_END.finditer(buf, 0, first):
            if match.end() == len(buf) and match.group() == "\r" and not final:
                break  # maybe half of a CRLF
            self._row += 1
            start = match.end()
        if first == len(buf) and not final:
            self._pending = buf[start:]
            self._check_row_len(len(self._pending))
            return None
        header = buf[start:]
        outside: list[str] = []  # the header's text outside quotes
        for index, segment in enumerate(header.split('"')):
            if index % 2:
                continue
            end = _LINE_END.search(segment)
            if end is not None:
                outside.append(segment[: end.start()])
                break
            outside.append(segment)
        else:
            if not final:
                self._pending = header
                self._check_row_len(len(header))
                return None
        text = "".join(outside)
        counts = [text.count(separator) for separator in _SEPARATORS]
        self._separator = _SEPARATORS[counts.index(max(counts))]
        sep = re.escape(self._separator)
        self._cell_end = re.compile(rf"[\r\n{sep}]")
        cell = rf'"(?:[^"]|"")*"|[^"{sep}]*'
        self._strict_line = re.compile(rf"(?:{cell})(?:{sep}(?:{cell}))*")
        self._strict_cell = re.compile(rf'(?:^|{sep})(?:"((?:[^"]|"")*)"|([^"{sep}]*))')
        return header

    def _parse(self, buf: str, *, hold: bool) -> list[SheetRow]:
        """Parse ``buf`` into rows; with ``hold``, a quote ending ``buf`` inside a
        quoted cell waits in ``_pending`` (it may be the first of ``""``)."""
        rows: list[SheetRow] = []
        separator = self._separator
        cell_end = self._cell_end
        assert separator is not None and cell_end is not None
        limits = self._limits
        size = len(buf)
        pos = 0
        while pos < size:
            state = self._state
            if state is _State.CELL_START and not self._cells:
                # Fast path: a whole line without quotes is split at once.
                end = _LINE_END.search(buf, pos)
                if end is not None:
                    line = buf[pos : end.start()]
                    cells = self._split_line(line)
                    if cells is not None:
                        if len(line) > limits.max_cell_chars:
                            self._check_row_len(len(line))
                            for cell in cells:
                                self._check_cell_len(len(cell))
                        self._cells = cells
                        self._end_record(rows)
                        pos = end.end()
                        continue
            if state is _State.CELL_START:
                if buf[pos] == '"':
                    self._state = _State.QUOTED
                    pos += 1
                    continue
                state = self._state = _State.UNQUOTED
            if state is _State.QUOTED:
                quote = buf.find('"', pos)
                if quote < 0:
                    self._add(buf[pos:])
                    break
                if quote + 1 == size and hold:
                    self._add(buf[pos:quote])
                    self._pending = '"'
                    break
                if quote + 1 < size and buf[quote + 1] == '"':
                    self._add(buf[pos : quote + 1])  # "" is one quote
                    pos = quote + 2
                else:
                    self._add(buf[pos:quote])
                    self._state = _State.AFTER_QUOTE
                    pos = quote + 1
                continue
            # UNQUOTED or AFTER_QUOTE: text up to the separator or line end.
            end = cell_end.search(buf, pos)
            if end is None:
                self._add(buf[pos:])
                break
            self._add(buf[pos : end.start()])
            self._end_cell()
            pos = end.end()
            if end.group() == separator:
                self._state = _State.CELL_START
                continue
            if end.group() == "\r" and pos < size and buf[pos] == "\n":
                pos += 1
            self._end_record(rows)
        return rows

    def _split_line(self, line: str) -> list[str] | None:
        """The cells of a whole line that is a whole record, or None (slow path).

        A line without quotes is split at once; one whose cells are all either
        unquoted or wholly quoted (RFC 4180) is split by a regular expression.
        Anything else (a quoted newline, a stray quote) takes the state machine.
        """
        if '"' not in line:
            return line.split(self._separator)
        assert self._strict_line is not None and self._strict_cell is not None
        if self._strict_line.fullmatch(line) is None:
            return None
        return [
            quoted.replace('""', '"') if quoted else plain
            for quoted, plain in self._strict_cell.findall(line)
        ]

    def _close(self, rows: list[SheetRow]) -> None:
        """End of the file: the last record may lack its line end."""
        if self._state is _State.QUOTED:
            raise FileRejected(
                FileProblem.MALFORMED,
                f'Row {self._row}: a quoted cell is never closed (a " is missing).',
                row=self._row,
            )
        if self._cells or self._parts or self._state is not _State.CELL_START:
            self._end_cell()
            self._end_record(rows)

    def _add(self, piece: str) -> None:
        if not piece:
            return
        self._parts.append(piece)
        self._check_cell_len(self._cell_len + len(piece))
        self._cell_len += len(piece)
        self._check_row_len(self._row_len + self._cell_len)

    def _end_cell(self) -> None:
        parts = self._parts
        cell = parts[0] if len(parts) == 1 else "".join(parts)
        parts.clear()
        self._row_len += self._cell_len
        self._cell_len = 0
        self._cells.append(cell)
        if len(self._cells) > self._limits.max_columns and cell.strip():
            self._too_wide()

    def _end_record(self, rows: list[SheetRow]) -> None:
        cells = self._cells
        while cells and not cells[-1].strip():
            cells.pop()
        if len(cells) > self._limits.max_columns:
            self._too_wide()
        if cells:
            rows.append(SheetRow(self._row, tuple(cells)))
            self._rows_out += 1
        self._row += 1
        self._cells = []
        self._row_len = 0
        self._state = _State.CELL_START

    def _too_wide(self) -> None:
        raise FileRejected(
            FileProblem.TOO_WIDE,
            f"Row {self._row}: more than {self._limits.max_columns} columns.",
            row=self._row,
        )

    def _check_cell_len(self, length: int) -> None:
        if length > self._limits.max_cell_chars:
            raise FileRejected(
                FileProblem.CELL_TOO_LONG,
                f"Row {self._row}: a cell is longer than {self._limits.max_cell_chars} characters.",
                row=self._row,
            )

    def _check_row_len(self, length: int) -> None:
        if length > self._limits.max_row_chars:
            raise FileRejected(
                FileProblem.CELL_TOO_LONG,
                f"Row {self._row}: the row is longer than {self._limits.max_row_chars}"
                " characters (an unclosed quote?).",
                row=self._row,
            )
