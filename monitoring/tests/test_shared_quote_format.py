"""The order coordinator's broker quotes in Redis (monitoring/sharding.py): written as arrays of
strings, read back as the very quote, field by field; a share written in the former format (an
object of tagged values, from a coordinator of before a deploy) still reads."""

import json
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from brokers.base import Greeks, Quote
from monitoring.sharding import GREEKS_ORDER, QUOTE_ORDER, broker_quote_from, broker_quote_json


def _former_plain(value):  # the writer before (its copy, as the reference)
    if isinstance(value, Decimal):
        return {"d": str(value)}
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if isinstance(value, Greeks):
        return {"g": {field.name: _former_plain(getattr(value, field.name)) for field in fields(Greeks)}}
    return value


def _former_unplain(value):
    if isinstance(value, dict):
        if "d" in value:
            return Decimal(value["d"])
        if "t" in value:
            return datetime.fromisoformat(value["t"])
        return Greeks(**{name: _former_unplain(item) for name, item in value["g"].items()})
    return value


def _former_json(quote: Quote) -> str:
    return json.dumps({field.name: _former_plain(getattr(quote, field.name)) for field in fields(Quote)})


def _former_from(text) -> Quote:
    return Quote(**{name: _former_unplain(value) for name, value in json.loads(text).items()})


PRICES = st.one_of(st.none(), st.decimals(min_value=0, max_value=10**5, places=4), st.decimals(allow_nan=False,
                                                                                                places=None))
SIZES = st.one_of(st.none(), st.integers(min_value=0, max_value=10**9))
NAIVE_BOUNDS = {"min_value": datetime(2000, 1, 1), "max_value": datetime(2100, 1, 1)}  # noqa: DTZ001 (hypothesis')
TIMES = st.one_of(st.none(), st.datetimes(**NAIVE_BOUNDS, timezones=st.sampled_from(
    [UTC, timezone(timedelta(hours=-5))])).map(lambda moment: moment.replace(fold=0)))  # ISO 8601 has no fold
GREEKS = st.one_of(st.none(), st.builds(Greeks, delta=PRICES, gamma=PRICES, theta=PRICES, vega=PRICES, rho=PRICES,
                                        mid_iv=PRICES, smv_vol=PRICES, updated_at=TIMES))
QUOTES = st.builds(Quote, symbol=st.text(max_size=21), bid=PRICES, ask=PRICES, last=PRICES, bid_size=SIZES,
                   ask_size=SIZES, volume=SIZES, bid_at=TIMES, ask_at=TIMES, traded_at=TIMES, greeks=GREEKS,
                   open_interest=SIZES)


@settings(max_examples=300, deadline=None)
@given(QUOTES)
def test_a_broker_quote_is_read_back_exactly_and_one_of_before_still_reads(quote):
    assert _former_from(_former_json(quote).encode()) == quote  # the reference itself
    for read in (broker_quote_from(broker_quote_json(quote).encode()), broker_quote_from(_former_json(quote))):
        assert read == quote
        assert [repr(getattr(read, name)) for name in vars(quote)] == [repr(getattr(quote, name))
                                                                        for name in vars(quote)]


def test_the_arrays_follow_the_dataclasses_fields():
    """A field added to Quote or Greeks must be added to the share's arrays too."""
    assert QUOTE_ORDER == tuple(field.name for field in fields(Quote))
    assert GREEKS_ORDER == tuple(field.name for field in fields(Greeks))
