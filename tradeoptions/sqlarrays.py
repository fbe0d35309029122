"""Array parameters written as PostgreSQL array literals by hand, for the monitor's one-statement
batches (`INSERT … SELECT FROM unnest(%s::numeric[], …)`).

Django binds parameters on the client (psycopg's client-side cursor): a Python list becomes an
array literal built element by element in pure Python, a regular-expression search per value to
decide its quoting. The snapshot cycle passes a dozen arrays of a row per held trade (100,000 at
scale), and that quoting was the largest share of its CPU. Numbers and aware timestamps never
need quoting inside an array literal (no comma, brace, quote, backslash or space), so their
literal is a join of the same text psycopg would write for each value (`str` of a Decimal or int,
`isoformat` of a datetime), and the whole literal is escaped once as one string. Cast it in the
SQL (`%s::numeric[]`): PostgreSQL reads it as it read psycopg's (tests/test_sqlarrays.py). Any
other value (a float, a naive datetime, a string) leaves the list to psycopg, as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal


def _element(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, Decimal):
        return "NaN" if value.is_nan() else str(value)  # psycopg writes a signalling NaN as NaN too
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return value.isoformat()
    raise TypeError(f"not a number or an aware datetime: {value!r}")


def array_literal(values: Iterable) -> str:
    """`values` (Decimals, ints, aware datetimes or None) as the text of a one-dimensional array."""
    return "{" + ",".join(map(_element, values)) + "}"


def array_param(values: list) -> str | list:
    """The parameter to pass for an array cast in the SQL: `values`' literal, or the list itself
    when a value is of another kind (psycopg then quotes it, as it always did)."""
    try:
        return array_literal(values)
    except TypeError:
        return values
