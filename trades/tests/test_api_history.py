"""The trade history: every filter, the sort, pages with counts, totals over the whole filtered set,
the trades that never filled with their reasons, bad values refused in words, the export honouring
the same filters, a constant number of queries per page and an index that serves it."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import ClosedTradeFactory, PaperTradeFactory
from tradeoptions import tenancy
from trades.models import CloseReason, PaperTrade, TradeStatus
from trades.selectors import HISTORY_ORDERING, TradeFilters, trade_history

# Closes in New York: 1 Dec 2026 09:45 to 3 Dec 15:00 (UTC-5).
DAY1, DAY2, DAY3 = (datetime(2026, 12, day, 14, 45, tzinfo=UTC) for day in (1, 2, 3))


def _ids(response):
    assert response.status_code == 200, response.json()
    return [row["id"] for row in response.json()["results"]]


def _closed(owner, *, closed, pnl, **fields):
    return ClosedTradeFactory(owner=owner, entry_date=closed - timedelta(hours=2), close_date=closed,
                              realized_pnl=Decimal(pnl), **fields)


@pytest.fixture
def book(trader, other_trader):
    """Alice's finished trades over three New York days, one still open, and Bob's."""
    _closed(other_trader, closed=DAY2, pnl="999")
    return {
        "open": PaperTradeFactory(owner=trader),
        "win": _closed(trader, closed=DAY1, pnl="120.00", ticker="SPY", strategy="breakout",
                       close_reason=CloseReason.TP_HIT, hold_duration_h=Decimal("2.50"), max_gain=Decimal("150.00"),
                       max_drawdown=Decimal("-40.00"), realized_pnl_pct=Decimal("28.5714")),
        "loss": _closed(trader, closed=DAY2, pnl="-80.00", ticker="QQQ", strategy="breakout",
                        close_reason=CloseReason.SL_HIT, hold_duration_h=Decimal("0.75"),
                        realized_pnl_pct=Decimal("-19.0476")),
        "flat": _closed(trader, closed=DAY2 + timedelta(hours=1), pnl="0.00", ticker="SPY", strategy="momentum",
                        close_reason=CloseReason.MANUAL_CLOSE, hold_duration_h=Decimal("6.00"),
                        realized_pnl_pct=Decimal("0")),
        "expired": _closed(trader, closed=DAY3, pnl="-420.00", ticker="IWM", strategy="momentum",
                           close_reason=CloseReason.EXPIRED, realized_pnl_pct=Decimal("-100")),
        "rejected": PaperTradeFactory(owner=trader, status=TradeStatus.REJECTED, entry_price=None,
                                      entry_date=None, status_reason="Not enough buying power for 2 contracts."),
        "canceled": PaperTradeFactory(owner=trader, status=TradeStatus.CANCELED, entry_price=None,
                                      entry_date=None, status_reason="Withdrawn by you before it filled."),
    }


def _names(book, response):
    by_id = {trade.pk: name for name, trade in book.items()}
    return [by_id[pk] for pk in _ids(response)]


def test_the_history_rows_carry_time_held_and_the_best_and_worst_they_stood_at(api_as, trader, book):
    row = next(row for row in api_as(trader).get("/api/trades/history").json()["results"]
               if row["id"] == book["win"].pk)
    assert (row["hold_duration_h"], row["max_gain"], row["max_drawdown"]) == ("2.50", "150.00", "-40.00")


@pytest.mark.parametrize(("query", "expected"), [
    ("", ["expired", "flat", "loss", "win"]),
    ("?outcome=win", ["win"]),
    ("?outcome=loss", ["loss"]),
    ("?outcome=flat", ["flat"]),
    ("?outcome=expired", ["expired"]),
    ("?strategy=breakout", ["loss", "win"]),
    ("?ticker=spy", ["flat", "win"]),
    ("?close_reason=SL_HIT", ["loss"]),
    ("?from=2026-12-02", ["expired", "flat", "loss"]),
    ("?to=2026-12-02", ["flat", "loss", "win"]),
    ("?from=2026-12-02&to=2026-12-02", ["flat", "loss"]),
    ("?closed_from=2026-12-02T15:00:00Z", ["expired", "flat"]),
    ("?ticker=SPY&strategy=momentum&outcome=flat", ["flat"]),
    ("?outcome=unfilled", ["canceled", "rejected"]),
    ("?status=REJECTED", ["rejected"]),
])
def test_each_filter_narrows_the_history(api_as, trader, book, query, expected):
    assert _names(book, api_as(trader).get(f"/api/trades/history{query}")) == expected


def test_a_day_is_a_new_york_day(api_as, trader, book):
    """Closed at 23:30 New York on 1 Dec (04:30 UTC on the 2nd): a 1 Dec trade, not a 2 Dec one."""
    late = _closed(trader, closed=datetime(2026, 12, 2, 4, 30, tzinfo=UTC), pnl="10")
    assert late.pk in _ids(api_as(trader).get("/api/trades/history?to=2026-12-01"))
    assert late.pk not in _ids(api_as(trader).get("/api/trades/history?from=2026-12-02"))


def test_the_trades_that_never_filled_come_with_their_reasons(api_as, trader, book):
    rows = api_as(trader).get("/api/trades/history?outcome=unfilled").json()["results"]
    assert {row["status"]: row["status_reason"] for row in rows} == {
        "REJECTED": "Not enough buying power for 2 contracts.", "CANCELED": "Withdrawn by you before it filled."}
    assert book["rejected"].pk not in _ids(api_as(trader).get("/api/trades/history"))


@pytest.mark.parametrize(("ordering", "expected"), [
    ("realized_pnl", ["expired", "loss", "flat", "win"]),
    ("-realized_pnl", ["win", "flat", "loss", "expired"]),
    ("close_date", ["win", "loss", "flat", "expired"]),
    ("-hold_duration_h", ["flat", "win", "loss", "expired"]),  # no time held recorded: last either way
    ("hold_duration_h", ["loss", "win", "flat", "expired"]),
    ("ticker", ["expired", "loss", "flat", "win"]),  # equal tickers: newest first
])
def test_the_history_sorts_by_a_column_either_way(api_as, trader, book, ordering, expected):
    assert _names(book, api_as(trader).get(f"/api/trades/history?ordering={ordering}")) == expected


def test_every_sortable_column_sorts(trader, book):
    with tenancy.acting_as(trader.pk):
        for name in HISTORY_ORDERING:
            for ordering in (name, f"-{name}"):
                assert len(trade_history(user=trader, filters=TradeFilters(), ordering=ordering)) == 4


def test_pages_say_where_they_sit_and_walk_the_whole_set_once(api_as, trader):
    trades = [_closed(trader, closed=DAY1 + timedelta(minutes=n), pnl=str(n)) for n in range(7)]
    client = api_as(trader)
    first = client.get("/api/trades/history?page_size=3&ordering=realized_pnl").json()
    assert {name: first[name] for name in ("count", "page", "pages", "page_size", "previous")} == {
        "count": 7, "page": 1, "pages": 3, "page_size": 3, "previous": None}
    seen, url = [], "/api/trades/history?page_size=3&ordering=realized_pnl"
    while url:
        body = client.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
    assert seen == [trade.pk for trade in trades]
    assert client.get("/api/trades/history?page_size=3&page=4").status_code == 404


def test_the_totals_are_of_the_whole_filtered_set_not_of_the_page(api_as, trader, book):
    with tenancy.acting_as(trader.pk):  # commissions and a fee: the net total is less than the gross
        PaperTrade.objects.filter(pk=book["win"].pk).update(
            entry_commission=Decimal("1.30"), exit_commission=Decimal("1.30"), fees=Decimal("0.05"))
    body = api_as(trader).get("/api/trades/history?page_size=1").json()
    assert len(body["results"]) == 1 and body["count"] == 4
    assert body["totals"] == {"count": 4, "realized_pnl": "-380.00", "realized_pnl_net": "-382.65", "closed": 4,
                              "wins": 1, "losses": 2, "flat": 1, "win_rate": "25.00"}
    narrowed = api_as(trader).get("/api/trades/history?strategy=breakout&page_size=1").json()["totals"]
    assert (narrowed["count"], narrowed["realized_pnl"], narrowed["win_rate"]) == (2, "40.00", "50.00")
    unfilled = api_as(trader).get("/api/trades/history?outcome=unfilled").json()["totals"]
    assert unfilled == {"count": 2, "realized_pnl": None, "realized_pnl_net": None, "closed": 0, "wins": 0,
                        "losses": 0, "flat": 0, "win_rate": None}


@pytest.mark.parametrize(("query", "field", "words"), [
    ("outcome=maybe", "outcome", "Choose win, loss, flat, expired or unfilled."),
    ("close_reason=LUCK", "close_reason", "Choose a close reason: take-profit, stop-loss, manual, expired or "
                                          "expired in the money."),
    ("status=OPEN", "status", "The history holds finished trades: choose CLOSED, CANCELED or REJECTED."),
    ("from=yesterday", "from", "Give a date as YYYY-MM-DD, e.g. 2026-12-01."),
    ("from=2026-12-03&to=2026-12-01", "to", "The end date is before the start date."),
    ("ordering=owner", "ordering", "Sort by one of the columns: close date, time placed, P&L, net P&L, P&L %, "
                                   "time held, best (MFE), worst (MAE), ticker, strategy, qty, entry, exit or "
                                   "close reason."),
    ("page_size=0", "page_size", "Show 1 to 200 rows a page."),
    ("page_size=201", "page_size", "Show 1 to 200 rows a page."),
    ("page_size=ten", "page_size", "Show 1 to 200 rows a page."),
    ("ticker=", "ticker", "May not be blank: leave the parameter out instead."),
])
def test_bad_values_are_refused_with_the_field_and_in_words(api_as, trader, query, field, words):
    response = api_as(trader).get(f"/api/trades/history?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "validation_error"
    assert [(error["attr"], error["detail"]) for error in body["errors"]] == [(field, words)]


def _csv_ids(response) -> list[int]:
    assert response.status_code == 200
    return [int(row["id"]) for row in csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))]


def test_the_export_honours_the_same_filters(api_as, trader, book):
    client = api_as(trader)
    assert _csv_ids(client.get("/api/trades/export?format=csv&strategy=breakout&status=CLOSED")) == [
        book["win"].pk, book["loss"].pk]
    assert _csv_ids(client.get("/api/trades/export?format=csv&outcome=unfilled")) == [
        book["rejected"].pk, book["canceled"].pk]
    assert _csv_ids(client.get("/api/trades/export?format=csv&from=2026-12-02&status=CLOSED")) == [
        book["loss"].pk, book["flat"].pk, book["expired"].pk]
    rows = json.loads(b"".join(client.get("/api/trades/export?format=json&outcome=flat").streaming_content))
    assert [row["id"] for row in rows] == [book["flat"].pk]
    assert len(_csv_ids(client.get("/api/trades/export?format=csv"))) == 7  # no filter: every trade, as before
    refused = client.get("/api/trades/export?format=csv&outcome=maybe")
    assert refused.status_code == 400 and refused.json()["errors"][0]["attr"] == "outcome"


@pytest.mark.parametrize("query", ["", "?outcome=unfilled",
                                   "?ordering=-realized_pnl&strategy=momentum&from=2026-12-01"])
def test_a_page_costs_the_same_queries_for_3_or_60_trades(api_as, trader, django_assert_max_num_queries, query):
    client = api_as(trader)
    for n in range(3):
        _closed(trader, closed=DAY1 + timedelta(minutes=n), pnl=str(n), strategy="momentum")
        PaperTradeFactory(owner=trader, status=TradeStatus.CANCELED, entry_price=None, entry_date=None)
    with CaptureQueriesContext(connection) as few:
        assert client.get(f"/api/trades/history{query}").status_code == 200
    for n in range(57):
        _closed(trader, closed=DAY2 + timedelta(minutes=n), pnl=str(n), strategy="momentum")
        PaperTradeFactory(owner=trader, status=TradeStatus.CANCELED, entry_price=None, entry_date=None)
    with django_assert_max_num_queries(len(few.captured_queries)):
        body = client.get(f"/api/trades/history{query}").json()
    assert len(body["results"]) == 50 and body["count"] == 60 and body["totals"]["count"] == 60


def _index_scans(plan: dict) -> set[str]:
    found = {plan["Index Name"]} if "Index Name" in plan else set()
    return found.union(*(_index_scans(child) for child in plan.get("Plans", [])))


def test_the_history_page_and_its_totals_are_read_through_the_owner_close_date_index(trader, other_trader):
    """With a sequential scan ruled out, the plan must find an index that serves the history's
    filter and order (on a table this small the planner would scan it whole anyway; the bench,
    bench/bench_history.py, shows the plan on 5,000 trades with the planner left free)."""
    for owner in (trader, other_trader):
        with tenancy.acting_as(owner.pk):
            PaperTrade.objects.bulk_create(
                PaperTrade(owner=owner, ticker="SPY", option_type="CALL", strike=Decimal("570"),
                           expiry=DAY3.date(), qty=1, entry_price=Decimal("4"), entry_date=DAY1,
                           sl_price=Decimal("3"), tp_price=Decimal("6"), status=TradeStatus.CLOSED,
                           close_price=Decimal("5"), close_date=DAY1 + timedelta(minutes=n),
                           close_reason=CloseReason.TP_HIT, realized_pnl=Decimal("100"))
                for n in range(300))
    with tenancy.acting_as(trader.pk):
        page = trade_history(user=trader, filters=TradeFilters(day_from=DAY1.date()))
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
        plan = json.loads(page[:50].explain(format="json"))[0]["Plan"]
        totals = json.loads(page.order_by().explain(format="json"))[0]["Plan"]
    assert _index_scans(plan) == {"trade_owner_closed_idx"}
    assert "Sort" not in json.dumps(plan)  # the index gives the order: the first page needs no sort
    assert _index_scans(totals) == {"trade_owner_closed_idx"}


def test_the_pages_count_and_the_totals_are_one_query(api_as, trader, book):
    """The count of the pages is the totals' count: one aggregate over the set, not a second COUNT."""
    client = api_as(trader)
    with CaptureQueriesContext(connection) as queries:
        body = client.get("/api/trades/history?page_size=2").json()
    counts = [query["sql"] for query in queries.captured_queries
              if "COUNT(" in query["sql"] and "trades_papertrade" in query["sql"]]
    assert len(counts) == 1 and body["count"] == body["totals"]["count"] == 4 and body["pages"] == 2
