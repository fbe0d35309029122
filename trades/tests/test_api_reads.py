"""Reads: list with filters, detail with events, snapshots for charts, history, export, query counts."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from math import ceil

import pytest
from django.db import connection
from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber
from django.test.utils import CaptureQueriesContext
from rest_framework.serializers import ListSerializer

from tests.factories import ClosedTradeFactory, PaperTradeFactory, PriceSnapshotFactory, TradeEventFactory
from tradeoptions import tenancy
from trades.models import CloseReason, TradeStatus
from trades.selectors import EXPORT_COLUMNS, SNAPSHOT_FIELDS, lifetime_snapshots, trade_snapshots
from trades.serializers import SnapshotSerializer

CLOSED = {"status": TradeStatus.CLOSED, "close_price": Decimal("5"), "close_date": datetime(2026, 12, 1, tzinfo=UTC)}


def _ids(response):
    return [row["id"] for row in response.json()["results"]]


@pytest.fixture
def book(trader):
    """Alice's trades: one open, one win, one loss, one expired; newest last."""
    return {
        "open": PaperTradeFactory(owner=trader, ticker="QQQ", strategy="breakout"),
        "win": PaperTradeFactory(owner=trader, realized_pnl=Decimal("120"), close_reason=CloseReason.TP_HIT,
                                 **CLOSED),
        "loss": PaperTradeFactory(owner=trader, realized_pnl=Decimal("-80"), close_reason=CloseReason.SL_HIT,
                                  **CLOSED),
        "expired": PaperTradeFactory(owner=trader, realized_pnl=Decimal("-420"), close_reason=CloseReason.EXPIRED,
                                     **CLOSED),
    }


@pytest.mark.parametrize(("query", "expected"), [
    ("", ["expired", "loss", "win", "open"]),
    ("?status=OPEN", ["open"]),
    ("?outcome=win", ["win"]),
    ("?outcome=loss", ["loss"]),
    ("?outcome=expired", ["expired"]),
    ("?strategy=breakout", ["open"]),
    ("?ticker=qqq", ["open"]),
    ("?status=CLOSED&outcome=loss", ["loss"]),
])
def test_the_list_filters_and_is_newest_first(api_as, trader, book, query, expected):
    response = api_as(trader).get(f"/api/trades{query}")
    assert response.status_code == 200
    assert _ids(response) == [book[name].pk for name in expected]


@pytest.mark.parametrize("query", ["?status=WHATEVER", "?outcome=maybe", "?closed_from=yesterday"])
def test_bad_filters_are_field_errors(api_as, trader, query):
    response = api_as(trader).get(f"/api/trades{query}")
    assert response.status_code == 400 and response.json()["type"] == "validation_error"


def test_history_has_closed_trades_most_recently_closed_first(api_as, trader, book):
    PaperTradeFactory(owner=trader, realized_pnl=Decimal("5"), close_reason=CloseReason.MANUAL_CLOSE,
                      **{**CLOSED, "close_date": datetime(2026, 11, 2, tzinfo=UTC)})
    response = api_as(trader).get("/api/trades/history?closed_from=2026-11-15T00:00:00Z")
    assert _ids(response) == [book["expired"].pk, book["loss"].pk, book["win"].pk]
    wins = _ids(api_as(trader).get("/api/trades/history?outcome=win"))
    assert wins[0] == book["win"].pk and len(wins) == 2  # the manual close made $5


def test_the_detail_has_brackets_the_latest_mark_and_the_event_log(api_as, trader):
    trade = PaperTradeFactory(owner=trader, current_bid=Decimal("4.1"), current_ask=Decimal("4.3"),
                              current_price=Decimal("4.2"), sl_order_id="11", tp_order_id="12",
                              bracket_order_id="10")
    TradeEventFactory(trade=trade)
    body = api_as(trader).get(f"/api/trades/{trade.pk}").json()
    assert (body["sl_order_id"], body["tp_order_id"], body["bracket_order_id"]) == ("11", "12", "10")
    assert (body["current_bid"], body["current_ask"], body["current_price"]) == ("4.1000", "4.3000", "4.2000")
    assert [event["new_status"] for event in body["events"]] == ["OPEN"]


def test_snapshots_come_in_time_order(api_as, trader):
    start = datetime(2026, 12, 1, 15, tzinfo=UTC)
    trade = PaperTradeFactory(owner=trader, entry_date=start)  # marked while held, whatever today is
    for minutes in (10, 0, 5):
        PriceSnapshotFactory(trade=trade, timestamp=start + timedelta(minutes=minutes))
    rows = api_as(trader).get(f"/api/trades/{trade.pk}/snapshots").json()
    assert [row["timestamp"] for row in rows] == ["2026-12-01T15:00:00Z", "2026-12-01T15:05:00Z",
                                                  "2026-12-01T15:10:00Z"]
    assert rows[0]["mark_price"] == "4.3500" and rows[0]["kind"] == "INTRADAY"


def test_a_long_trades_chart_is_thinned_to_at_most_1000_points_keeping_both_ends(trader):
    start = datetime(2026, 12, 1, 15, tzinfo=UTC)
    trade = PaperTradeFactory(owner=trader, entry_date=start)
    PriceSnapshot = trade.snapshots.model  # monitoring's model, reached the way trades reaches it
    with tenancy.acting_as(trader.pk):
        PriceSnapshot.objects.bulk_create(
            PriceSnapshot(trade=trade, owner=trader, timestamp=start + timedelta(minutes=index),
                          mark_price=Decimal(index) / 100, source="simulated")
            for index in range(2501)
        )
        rows = trade_snapshots(trade=trade)
        few = trade_snapshots(trade=trade, max_points=10)
    assert len(rows) <= 1000 and len(rows) > 800
    assert rows[0]["timestamp"] == start and rows[-1]["timestamp"] == start + timedelta(minutes=2500)
    assert [row["timestamp"] for row in rows] == sorted(row["timestamp"] for row in rows)
    assert len(few) <= 10 and few[-1]["mark_price"] == Decimal("25")


def _chart_through_the_orm(trade, max_points=1000):
    """The chart's read as it was before issue 20's one-statement version: a count, then the ORM's
    window over the same rows. The reference the new read must match row for row."""
    snapshots = lifetime_snapshots(trade).order_by("timestamp", "kind")
    total = snapshots.count()
    if total <= max_points:
        return list(snapshots.values(*SNAPSHOT_FIELDS))
    step = ceil(total / (max_points - 1))
    numbered = snapshots.annotate(n=Window(RowNumber(), order_by=[F("timestamp").asc(), F("kind").asc()]))
    thinned = numbered.annotate(slot=(F("n") - 1) % step).filter(Q(slot=0) | Q(n=total))
    return list(thinned.order_by("timestamp", "kind").values(*SNAPSHOT_FIELDS))


def test_the_chart_is_one_query_with_the_same_rows_and_api_output_as_the_orm_read(api_as, trader, other_trader):
    """Issue 20: the chart reads tuples in one statement; its rows (every field, every kind, the
    nulls, the thinning's ends) and the endpoint's JSON are what the ORM read and DRF's generic
    serializer path gave."""
    start = datetime(2026, 11, 28, 14, 30, tzinfo=UTC)
    trade = ClosedTradeFactory(owner=trader, entry_date=start, close_date=start + timedelta(days=4))
    PriceSnapshotFactory(trade=PaperTradeFactory(owner=other_trader, entry_date=start), timestamp=start)
    kinds = ("PRE_MARKET", "INTRADAY", "INTRADAY", "POST_MARKET")
    with tenancy.acting_as(trader.pk):
        PriceSnapshot = trade.snapshots.model
        rows = [PriceSnapshot(trade=trade, owner=trader, timestamp=start + timedelta(minutes=17 * index),
                              kind=kinds[index % 4], mark_price=Decimal(index) / 8 + Decimal("0.0125"),
                              bid=None if index % 5 == 0 else Decimal(index) / 8, ask=Decimal(index) / 7,
                              delta=Decimal(index % 100) / 101, gamma=Decimal("0.012345"),
                              theta=-Decimal(index) / 1000, vega=Decimal("0.1"), iv=Decimal(index % 37) / 99,
                              underlying=None if index % 3 == 0 else Decimal("501.25") + index,
                              quote_time=start + timedelta(minutes=17 * index - 1) if index % 2 else None,
                              source="orats" if index % 2 else "tradier", delayed=index % 2 == 1)
                for index in range(337)]
        rows.append(PriceSnapshot(trade=trade, owner=trader, timestamp=rows[40].timestamp, kind="FILL",
                                  mark_price=Decimal("4.30"), source="tradier"))  # a fill in an intraday slot
        PriceSnapshot.objects.bulk_create(rows)
        for points in (1000, 338, 337, 100, 10, 3, 2):
            expected = _chart_through_the_orm(trade, points)
            with CaptureQueriesContext(connection) as queries:
                chart = trade_snapshots(trade=trade, max_points=points)
            assert chart == expected and len(queries.captured_queries) == 1, points
            assert [list(row) for row in chart] == [list(SNAPSHOT_FIELDS)] * len(chart)
        assert len(trade_snapshots(trade=trade, max_points=10)) == 10
        # DRF's generic list path, not the chart's own (SnapshotRowsSerializer)
        before = ListSerializer(_chart_through_the_orm(trade), child=SnapshotSerializer()).data
    response = api_as(trader).get(f"/api/trades/{trade.pk}/snapshots")
    assert response.status_code == 200 and response.json() == json.loads(json.dumps(before))
    assert len(response.json()) == 338


def test_export_csv_has_every_trade_in_a_stable_column_order_with_iso_times(api_as, trader, other_trader, book):
    PaperTradeFactory(owner=other_trader)
    response = api_as(trader).get("/api/trades/export?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response.streaming
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    records = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [int(record["id"]) for record in records] == [trade.pk for trade in book.values()]  # oldest first
    win = records[1]
    assert win["realized_pnl"] == "120.00" and win["close_reason"] == "TP_HIT"
    assert win["close_date"] == "2026-12-01T00:00:00+00:00"
    assert datetime.fromisoformat(win["created_at"]).tzinfo is not None


def test_export_json_is_the_same_rows(api_as, trader, book):
    response = api_as(trader).get("/api/trades/export?format=json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    rows = json.loads(b"".join(response.streaming_content))
    assert [row["id"] for row in rows] == [trade.pk for trade in book.values()]
    assert list(rows[0]) == list(EXPORT_COLUMNS) and rows[2]["realized_pnl"] == "-80.00"
    assert "idempotency_key" not in rows[0]


@pytest.mark.parametrize("route", ["", "/snapshots", "/close", "/adjust"])
def test_every_trade_route_answers_404_for_another_users_trade(api_as, trader, other_trader, route):
    theirs = PaperTradeFactory(owner=other_trader)
    client = api_as(trader)
    method = client.post if route in ("/close", "/adjust") else client.get
    foreign = method(f"/api/trades/{theirs.pk}{route}", {"version": 1, "new_sl": "3.5"}, format="json")
    missing = method(f"/api/trades/999999{route}", {"version": 1, "new_sl": "3.5"}, format="json")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json() == {
        "type": "client_error", "errors": [{"code": "not_found", "detail": "Not found.", "attr": None}]}


@pytest.mark.parametrize("path", ["/api/trades", "/api/trades/history"])
def test_a_list_costs_the_same_queries_for_2_or_20_trades(api_as, trader, django_assert_num_queries, path):
    client = api_as(trader)
    PaperTradeFactory.create_batch(2, owner=trader, **CLOSED, close_reason=CloseReason.TP_HIT)
    with CaptureQueriesContext(connection) as baseline:
        assert client.get(path).status_code == 200
    PaperTradeFactory.create_batch(18, owner=trader, **CLOSED, close_reason=CloseReason.TP_HIT)
    with django_assert_num_queries(len(baseline.captured_queries)):
        assert len(client.get(path).json()["results"]) == 20


def test_the_detail_costs_the_same_queries_for_1_or_10_events(api_as, trader, django_assert_num_queries):
    client = api_as(trader)
    trade = PaperTradeFactory(owner=trader)
    TradeEventFactory(trade=trade)
    with CaptureQueriesContext(connection) as baseline:
        client.get(f"/api/trades/{trade.pk}")
    TradeEventFactory.create_batch(9, trade=trade)
    with django_assert_num_queries(len(baseline.captured_queries)):
        assert len(client.get(f"/api/trades/{trade.pk}").json()["events"]) == 10


def test_the_chart_rows_fast_path_gives_way_to_drf_for_a_field_read_from_another_source():
    """The fast path reads each row by the field's name; a field renamed through `source` must read
    its source, as DRF does."""
    from rest_framework import serializers

    class Renamed(serializers.Serializer):
        class Meta:
            list_serializer_class = type(SnapshotSerializer(many=True))

        price = serializers.DecimalField(max_digits=12, decimal_places=2, source="mark_price")

    rows = [{"mark_price": Decimal("1.5"), "price": Decimal("9.99")}]
    assert Renamed(rows, many=True).data == [{"price": "1.50"}]
