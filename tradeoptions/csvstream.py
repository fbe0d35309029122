"""CSV as a stream of lines, for exports too large to build in memory.

Every CSV the project writes goes through `csv_lines`, so this is where text that a spreadsheet
would run as a formula is neutralised (OWASP, "CSV Injection"): a text cell starting with `=`,
`+`, `-`, `@`, a tab or a carriage return gets a leading single quote, which spreadsheets show as
text and do not evaluate (`=HYPERLINK(...)` is written `'=HYPERLINK(...)`). A cell that is a
plain number (`-12.50`, `+3`, `1e-5`) is left alone: it cannot be a formula, and a negative P&L
must stay a number. Values that are not text (Decimal, int, float, bool) are numbers by type and
are never touched. Only CSV does this; JSON and Parquet carry the text exactly as stored.
"""

import csv
import io
import re
from collections.abc import Iterable, Iterator

FORMULA_STARTS = frozenset("=+-@\t\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def spreadsheet_safe(value):
    """The value as a CSV cell may hold it: text that would start a formula, quoted to stay text."""
    if isinstance(value, str) and value[:1] in FORMULA_STARTS and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_lines(header: list[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """The header line, then one line per row, each written by the csv module (quoting right),
    every cell made spreadsheet-safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values) -> str:
        # The cheap test first: most cells start with no formula character, and a CSV is millions of cells.
        writer.writerow([spreadsheet_safe(value) if isinstance(value, str) and value[:1] in FORMULA_STARTS else value
                         for value in values])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(header)
    for values in rows:
        yield line(values)
