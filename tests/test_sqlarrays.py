"""`tradeoptions.sqlarrays`: an array literal written by hand reads in PostgreSQL as the very array
psycopg's own quoting of the list reads as, value for value (the snapshot cycle's batches)."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradeoptions.sqlarrays import array_literal, array_param

NUMERICS = st.one_of(st.none(), st.just(Decimal("NaN")), st.just(Decimal("-0")),
                     st.decimals(min_value=-10**20, max_value=10**20, allow_nan=False, places=None),
                     st.decimals(min_value=-10**6, max_value=10**6, places=4),
                     st.integers(min_value=-10**30, max_value=10**30).map(Decimal).map(lambda d: d.scaleb(-3)),
                     st.integers(min_value=-99, max_value=99).map(lambda e: Decimal(f"1E{e}")))
BIGINTS = st.one_of(st.none(), st.integers(min_value=-2**63, max_value=2**63 - 1))
OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))])
NAIVE_BOUNDS = {"min_value": datetime(1970, 1, 1), "max_value": datetime(2200, 1, 1)}  # noqa: DTZ001 (hypothesis')
INSTANTS = st.one_of(st.none(), st.datetimes(**NAIVE_BOUNDS, timezones=OFFSETS))


def _read(sql_type: str, value) -> str:
    """The array PostgreSQL read, in its own canonical text (exact: every digit and scale; NaN too)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT %s::{sql_type}[]::text", [value])
        return cursor.fetchone()[0]


def _same_as_psycopg(sql_type: str, values: list) -> None:
    assert _read(sql_type, array_literal(values)) == _read(sql_type, values)


@pytest.mark.django_db
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(NUMERICS, min_size=1, max_size=12))
def test_numerics_read_as_psycopg_s_array(values):
    _same_as_psycopg("numeric", values)


@pytest.mark.django_db
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(BIGINTS, min_size=1, max_size=12))
def test_bigints_read_as_psycopg_s_array(values):
    _same_as_psycopg("bigint", values)


@pytest.mark.django_db
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(INSTANTS, min_size=1, max_size=12))
def test_aware_instants_read_as_psycopg_s_array(values):
    _same_as_psycopg("timestamptz", values)


def test_other_values_are_left_to_psycopg():
    naive = [datetime(2026, 12, 1, 15, 0)]  # noqa: DTZ001 (naive on purpose)
    assert array_param(naive) is naive
    assert array_param([1.5]) == [1.5] and array_param(["AAPL"]) == ["AAPL"] and array_param([True]) == [True]
    assert array_param([Decimal("1.50"), None, 7]) == "{1.50,NULL,7}"
    assert array_param([]) == "{}"
