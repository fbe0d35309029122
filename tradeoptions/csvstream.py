"""CSV as a stream of lines, for exports too large to build in memory."""

import csv
import io
from collections.abc import Iterable, Iterator


def csv_lines(header: list[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """The header line, then one line per row, each written by the csv module (quoting right)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values) -> str:
        writer.writerow(values)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield line(header)
    for values in rows:
        yield line(values)
