"""The chart's JSON written by PostgreSQL (issue 20) is DRF's JSON byte for byte: every value
spelled as DRF spells it (decimals to their places, times in ISO 8601 in the active time zone with
'Z' for a zero offset, nulls, booleans, escapes), the keys in the serializer's order, the rows
thinned and bounded as `trade_snapshots` reads them, and only the user's own."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.renderers import JSONRenderer
from rest_framework.serializers import ListSerializer

from tests.factories import ClosedTradeFactory, PaperTradeFactory, PriceSnapshotFactory
from tradeoptions import tenancy
from trades import selectors
from trades.serializers import SnapshotSerializer, active_time_zone_name, json_columns

START = datetime(2026, 10, 30, 19, 30, tzinfo=UTC)  # spans October, November (a DST change) and December
ZONES = ("UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "America/St_Johns", "Pacific/Chatham")
KINDS = ("PRE_MARKET", "INTRADAY", "INTRADAY", "POST_MARKET")


def _drf_bytes(rows) -> bytes:
    """What the endpoint answered before issue 20's SQL JSON: DRF's generic list path, rendered."""
    return JSONRenderer().render(ListSerializer(rows, child=SnapshotSerializer()).data)


def _sql_bytes(trade, max_points=selectors.MAX_CHART_POINTS) -> bytes:
    return selectors.trade_snapshots_json(trade=trade, columns=json_columns(SnapshotSerializer()),
                                          time_zone=active_time_zone_name(), max_points=max_points)


def _varied_rows(trade, owner, count=400):
    """Snapshots with every kind of value: nulls, zeros, negatives, all places used, microseconds,
    sources with quotes, non-ASCII, control characters and the line separators DRF escapes."""
    PriceSnapshot = trade.snapshots.model
    sources = ("orats", 'q"uo\\te', "ünïcødé €", "tab\there\n", "sep\u2028\u2029", "ctl\x01\x1f\x7f")
    rows = [PriceSnapshot(trade=trade, owner=owner, timestamp=START + timedelta(minutes=173 * index),
                          kind=KINDS[index % 4], mark_price=Decimal(index) / 8 + Decimal("0.0001") * (index % 7),
                          bid=None if index % 5 == 0 else Decimal(index % 9) / 3,  # 0 and 1/3 rounded
                          ask=Decimal("99999999.9999") if index == 7 else Decimal(index) / 7,
                          delta=None if index % 11 == 0 else Decimal(index % 200 - 100) / 101,
                          gamma=Decimal("-0") if index % 13 == 0 else Decimal("0.012345"),
                          theta=-Decimal(index) / 1000,
                          vega=Decimal("-999999.999999") if index == 3 else Decimal("0.1"),
                          iv=None if index % 2 else Decimal(index % 37) / 99,
                          underlying=None if index % 3 == 0 else Decimal("501.25") + index,
                          quote_time=(START + timedelta(minutes=173 * index - 1, microseconds=index * 1013 % 1_000_000)
                                      if index % 2 else None),
                          source=sources[index % len(sources)], delayed=index % 2 == 1)
            for index in range(count)]
    rows.append(PriceSnapshot(trade=trade, owner=owner, timestamp=rows[40].timestamp, kind="FILL",
                              mark_price=Decimal("0"), source="tradier"))  # a fill in an intraday slot
    PriceSnapshot.objects.bulk_create(rows)


@pytest.fixture
def spanning(trader, other_trader):
    """A trade closed after ~48 days, marked over three months, and someone else's snapshot in its slot."""
    trade = ClosedTradeFactory(owner=trader, entry_date=START, close_date=START + timedelta(minutes=173 * 399))
    PriceSnapshotFactory(trade=PaperTradeFactory(owner=other_trader, entry_date=START), timestamp=START)
    with tenancy.acting_as(trader.pk):
        _varied_rows(trade, trader)
    return trade


def test_the_snapshot_columns_have_the_serializers_places():
    """The SQL writes a column's stored value (its scale); DRF quantizes to the field's places. The
    same places, so no value is ever rounded by either, and the two spellings are the same."""
    model = selectors.PaperTrade.snapshots.rel.related_model
    columns = json_columns(SnapshotSerializer())
    assert [column.name for column in columns] == list(SnapshotSerializer().fields) == list(selectors.SNAPSHOT_FIELDS)
    for column in columns:
        if column.kind == "decimal":
            assert model._meta.get_field(column.name).decimal_places == column.places, column.name


@pytest.mark.parametrize("zone", ZONES)
def test_the_sql_json_is_drfs_bytes_in_every_time_zone_thinned_or_not(trader, spanning, zone):
    with tenancy.acting_as(trader.pk), timezone.override(zone):
        assert active_time_zone_name() == zone
        for points in (1000, 402, 401, 400, 100, 10, 3, 2):
            expected = _drf_bytes(selectors.trade_snapshots(trade=spanning, max_points=points))
            with CaptureQueriesContext(connection) as queries:
                body = _sql_bytes(spanning, points)
            assert body == expected, (zone, points)
            assert len(queries.captured_queries) == 1
        assert len(selectors.trade_snapshots(trade=spanning)) == 401  # every row, the other user's not


def test_a_trade_without_snapshots_is_an_empty_array(trader):
    trade = PaperTradeFactory(owner=trader, entry_date=START)
    with tenancy.acting_as(trader.pk):
        assert _sql_bytes(trade) == b"[]" == _drf_bytes([])


def test_the_endpoint_answers_the_sql_json_as_drf_did(api_as, trader, spanning):
    with tenancy.acting_as(trader.pk):
        expected = _drf_bytes(selectors.trade_snapshots(trade=spanning))
    with CaptureQueriesContext(connection) as queries:
        response = api_as(trader).get(f"/api/trades/{spanning.pk}/snapshots")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.content == expected
    assert sum("json" in query["sql"].lower() for query in queries.captured_queries) == 1
    # Asked for indentation or the browsable API, DRF renders it as before.
    indented = api_as(trader).get(f"/api/trades/{spanning.pk}/snapshots", HTTP_ACCEPT="application/json; indent=2")
    assert indented.status_code == 200 and indented.content.startswith(b'[\n  {\n    "timestamp"')
    assert indented.json() == response.json()
    page = api_as(trader).get(f"/api/trades/{spanning.pk}/snapshots", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")


def test_decimal_places_other_than_the_columns_take_drfs_path():
    """DRF would round them half to even, PostgreSQL half away from zero: not written in SQL."""
    class Rounded(SnapshotSerializer):
        delta = SnapshotSerializer().fields["delta"].__class__(max_digits=12, decimal_places=4, allow_null=True)

    assert json_columns(Rounded()) is None
    with pytest.raises(ValueError, match="decimal places"):
        selectors._value_json(selectors.JsonColumn("delta", "decimal", 4), "UTC")


def test_a_zone_without_an_iana_name_takes_drfs_path(trader, spanning):
    from datetime import timezone as fixed

    with timezone.override(fixed(timedelta(hours=5, minutes=30))):
        assert active_time_zone_name() is None


PRICE = st.decimals(min_value=0, max_value=Decimal("99999999.9999"), places=4)
GREEK = st.none() | st.decimals(min_value=Decimal("-999999.999999"), max_value=Decimal("999999.999999"), places=6)
# Hypothesis bounds its datetimes by naive ones, then gives them the time zone.
MOMENT = st.datetimes(min_value=datetime(2026, 10, 30), max_value=datetime(2026, 12, 15),  # noqa: DTZ001
                      timezones=st.just(UTC))
SNAPSHOT = st.fixed_dictionaries({
    "kind": st.sampled_from(KINDS + ("FILL",)), "mark_price": PRICE, "bid": st.none() | PRICE, "ask": st.none() | PRICE,
    "delta": GREEK, "gamma": GREEK, "theta": GREEK, "vega": GREEK, "iv": GREEK, "underlying": st.none() | PRICE,
    "quote_time": st.none() | MOMENT, "delayed": st.booleans(),
    "source": st.text(st.characters(exclude_characters="\x00", codec="utf-8"), max_size=16),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(snapshots=st.lists(st.tuples(MOMENT, SNAPSHOT), max_size=30, unique_by=lambda pair: pair[0]),
       points=st.integers(2, 40), zone=st.sampled_from(ZONES))
def test_any_values_are_spelled_as_drf_spells_them(trader, snapshots, points, zone):
    trade = ClosedTradeFactory(owner=trader, entry_date=datetime(2026, 11, 2, tzinfo=UTC),
                               close_date=datetime(2026, 12, 1, tzinfo=UTC))
    with tenancy.acting_as(trader.pk), timezone.override(zone):
        PriceSnapshot = trade.snapshots.model
        PriceSnapshot.objects.bulk_create(PriceSnapshot(trade=trade, owner=trader, timestamp=at, **values)
                                          for at, values in snapshots)
        assert _sql_bytes(trade, points) == _drf_bytes(selectors.trade_snapshots(trade=trade, max_points=points))


def test_the_endpoint_writes_times_in_sql_only_in_utc(api_as, trader, spanning):
    """PostgreSQL's tz database and Python's can disagree on a zone's rules: outside UTC, DRF's path."""
    with tenancy.acting_as(trader.pk), timezone.override("America/New_York"):
        expected = _drf_bytes(selectors.trade_snapshots(trade=spanning))
    with timezone.override("America/New_York"), CaptureQueriesContext(connection) as queries:
        response = api_as(trader).get(f"/api/trades/{spanning.pk}/snapshots")
    assert response.status_code == 200 and response.content == expected
    assert not any("json" in query["sql"].lower() for query in queries.captured_queries)
