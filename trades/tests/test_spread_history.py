"""Finished spreads in the History and the trades export (issue 19): strategy, legs, width, credit
or debit, max profit and loss, the return on the max loss, the strategy_type filter, and the legs
read in one query whatever the number of trades."""

import csv
import io
import json
from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import analytics_four_trades, closed_spread_trade
from trades import spreads
from trades.selectors import EXPORT_COLUMNS
from trades.strategies import strategy_label

EXPIRY = date(2026, 12, 18)

# name: (label, net_direction, entry, close, pnl, width, max profit, max loss, breakevens, return on max loss %)
EXPECTED = {
    "condor": ("Iron condor 490/495/515/520", "credit", "1.6000", "0.8000", "160.00", "5.000", "320.00", "680.00",
               ["493.4000", "516.6000"], "23.53"),
    "vertical": ("Call debit spread 500/505", "debit", "1.8000", "1.2000", "-60.00", "5.000", "320.00", "180.00",
                 ["501.8000"], "-33.33"),
    "straddle": ("Long straddle 500", "debit", "7.5000", "8.2000", "70.00", "0.000", None, "750.00",
                 ["492.5000", "507.5000"], "9.33"),
    "single": ("Long call 570", "debit", "4.2000", "5.0000", "160.00", "0.000", None, "840.00", ["574.2000"],
               "19.05"),
}


@pytest.fixture
def four(trader):
    return analytics_four_trades(trader)


def test_the_history_names_each_strategy_with_its_legs_width_direction_and_return_on_max_loss(api_as, trader, four):
    rows = {row["id"]: row for row in api_as(trader).get("/api/trades/history").json()["results"]}
    for name, trade in four.items():
        row = rows[trade.pk]
        label, direction, entry, close, pnl, width, max_profit, max_loss, breakevens, ret = EXPECTED[name]
        assert (row["strategy_label"], row["net_direction"], row["entry_price"], row["close_price"],
                row["realized_pnl"], row["width"], row["max_profit"], row["max_loss"], row["breakevens"],
                row["return_on_max_loss_pct"]) == (label, direction, entry, close, pnl, width, max_profit, max_loss,
                                                   breakevens, ret), name
    condor = rows[four["condor"].pk]
    assert [(leg["side"], leg["strike"], leg["entry_price"], leg["exit_price"]) for leg in condor["legs"]] == [
        ("LONG", "490.000", "0.8000", "0.3000"), ("SHORT", "495.000", "1.6000", "0.7000"),
        ("SHORT", "515.000", "1.5000", "0.6000"), ("LONG", "520.000", "0.7000", "0.2000")]
    # A credit trade bought back cheaper than it sold is a win: it counts as one in the totals.
    assert condor["realized_pnl"] == "160.00" and condor["close_price"] < condor["entry_price"]
    # A single option's max loss is its premium: 160 / (4.20 × 2 × 100) = 19.05 %, its old return.
    assert rows[four["single"].pk]["return_on_max_loss_pct"] == "19.05"


@pytest.mark.parametrize(("strategy_type", "names"), [
    ("iron_condor", ["condor"]), ("vertical", ["vertical"]), ("straddle", ["straddle"]), ("single", ["single"])])
def test_the_history_filters_by_strategy_type(api_as, trader, four, strategy_type, names):
    response = api_as(trader).get(f"/api/trades/history?strategy_type={strategy_type}")
    assert [row["id"] for row in response.json()["results"]] == [four[name].pk for name in names]


def test_an_unknown_strategy_type_is_a_400_in_trader_words(api_as, trader):
    response = api_as(trader).get("/api/trades/history?strategy_type=condor")
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["attr"] == "strategy_type" and "iron_condor" in error["detail"]


def test_the_history_reads_the_legs_in_one_query_for_4_or_12_trades(api_as, trader, four,
                                                                     django_assert_num_queries):
    client = api_as(trader)
    with CaptureQueriesContext(connection) as baseline:
        assert len(client.get("/api/trades/history").json()["results"]) == 4
    analytics_four_trades(trader)
    analytics_four_trades(trader)
    with django_assert_num_queries(len(baseline.captured_queries)):
        assert len(client.get("/api/trades/history").json()["results"]) == 12


@pytest.mark.parametrize(("position", "direction", "label"), [
    (spreads.vertical(root="SPY", expiry=EXPIRY, option_type="PUT", lower=495, upper=500, credit=True), "credit",
     "Put credit spread 500/495"),
    (spreads.vertical(root="SPY", expiry=EXPIRY, option_type="PUT", lower=495, upper=500), "debit",
     "Put debit spread 500/495"),
    (spreads.vertical(root="SPY", expiry=EXPIRY, option_type="CALL", lower=500, upper=505, credit=True), "credit",
     "Call credit spread 500/505"),
    (spreads.strangle(root="SPY", expiry=EXPIRY, put_strike=490, call_strike=510, short=True), "credit",
     "Short strangle 490/510"),
    (spreads.straddle(root="SPY", expiry=EXPIRY, strike="502.5"), "debit", "Long straddle 502.5"),
    (spreads.butterfly(root="SPY", expiry=EXPIRY, option_type="CALL", lower=495, middle=500, upper=505), "debit",
     "Call butterfly 495/500/505"),
    (spreads.calendar(root="SPY", option_type="PUT", strike=500, front_expiry=EXPIRY,
                      back_expiry=date(2027, 1, 15)), "debit", "Put calendar 500 Dec 18/Jan 15"),
])
def test_every_template_has_a_label_a_trader_reads(position, direction, label):
    assert strategy_label(position.strategy, direction, position.legs) == label


def test_a_credit_vertical_returns_its_pnl_on_width_less_credit(api_as, trader):
    put_credit = closed_spread_trade(
        owner=trader, position=spreads.vertical(root="SPY", expiry=EXPIRY, option_type="PUT", lower=495, upper=500,
                                                credit=True, quantity=3),
        entries=["0.90", "2.40"], exits=["0.20", "0.60"])  # credit 1.50, bought back at 0.40
    row = api_as(trader).get("/api/trades/history").json()["results"][0]
    assert row["id"] == put_credit.pk and row["strategy_label"] == "Put credit spread 500/495"
    # P&L = (1.50 − 0.40) × 3 × 100 = 330 on a max loss of (5 − 1.50) × 3 × 100 = 1050: 31.43 %.
    assert (row["realized_pnl"], row["max_loss"], row["max_profit"], row["return_on_max_loss_pct"]) == (
        "330.00", "1050.00", "450.00", "31.43")


def _export(client, fmt):
    response = client.get(f"/api/trades/export?format={fmt}")
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


def test_the_csv_export_carries_strategy_legs_width_and_risk(api_as, trader, four):
    rows = list(csv.reader(io.StringIO(_export(api_as(trader), "csv"))))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    records = {int(row[0]): dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    condor = records[four["condor"].pk]
    assert (condor["strategy_type"], condor["net_direction"], condor["strategy_label"], condor["leg_count"],
            condor["width"], condor["max_profit"], condor["max_loss"], condor["breakevens"],
            condor["return_on_max_loss_pct"], condor["entry_price"]) == (
        "iron_condor", "credit", "Iron condor 490/495/515/520", "4", "5.000", "320.00", "680.00",
        "493.4000;516.6000", "23.53", "1.6000")
    assert condor["legs"] == ("long 1 SPY261218P00490000 @0.8000>0.3000; short 1 SPY261218P00495000 @1.6000>0.7000; "
                              "short 1 SPY261218C00515000 @1.5000>0.6000; long 1 SPY261218C00520000 @0.7000>0.2000")
    for name, trade in four.items():
        label, direction, *_, max_loss, _breakevens, ret = EXPECTED[name]
        record = records[trade.pk]
        assert (record["strategy_label"], record["net_direction"], record["max_loss"],
                record["return_on_max_loss_pct"]) == (label, direction, max_loss, ret), name
    assert records[four["straddle"].pk]["max_profit"] == ""  # unlimited


def test_the_json_export_has_the_same_columns(api_as, trader, four):
    rows = {row["id"]: row for row in json.loads(_export(api_as(trader), "json"))}
    vertical = rows[four["vertical"].pk]
    assert list(vertical) == list(EXPORT_COLUMNS)
    assert (vertical["strategy_type"], vertical["leg_count"], vertical["width"], vertical["max_loss"],
            vertical["legs"]) == ("vertical", 2, "5.000", "180.00",
                                  "long 1 SPY261218C00500000 @3.0000>2.1000; short 1 SPY261218C00505000 @1.2000>0.9000")


def test_the_export_reads_the_legs_in_one_query_for_4_or_12_trades(api_as, trader, four):
    client = api_as(trader)
    with CaptureQueriesContext(connection) as baseline:
        _export(client, "csv")
    analytics_four_trades(trader)
    analytics_four_trades(trader)
    with CaptureQueriesContext(connection) as more:
        text = _export(client, "csv")
    assert len(text.splitlines()) == 13
    assert len(more.captured_queries) == len(baseline.captured_queries)
    assert sum("trades_tradeleg" in query["sql"] for query in more.captured_queries) == 1


def test_the_export_handles_a_butterfly_a_short_strangle_and_a_calendar(api_as, trader):
    butterfly = closed_spread_trade(
        owner=trader, position=spreads.butterfly(root="SPY", expiry=EXPIRY, option_type="CALL", lower=495,
                                                 middle=500, upper=505),
        entries=["7.00", "4.00", "2.00"], exits=["7.50", "3.50", "1.20"])  # debit 1.00, sold at 1.70
    strangle = closed_spread_trade(
        owner=trader, position=spreads.strangle(root="SPY", expiry=EXPIRY, put_strike=490, call_strike=510,
                                                short=True),
        entries=["2.00", "1.80"], exits=["1.00", "0.50"])  # credit 3.80, bought back at 1.50
    calendar = closed_spread_trade(
        owner=trader, position=spreads.calendar(root="SPY", option_type="PUT", strike=500, front_expiry=EXPIRY,
                                                back_expiry=date(2027, 1, 15)),
        entries=["3.00", "5.00"], exits=["1.00", "4.20"])  # debit 2.00, sold at 3.20
    rows = list(csv.reader(io.StringIO(_export(api_as(trader), "csv"))))
    records = {int(row[0]): dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    columns = ("strategy_label", "net_direction", "entry_price", "close_price", "realized_pnl", "leg_count", "width",
               "max_profit", "max_loss", "breakevens", "return_on_max_loss_pct")
    figures = {name: tuple(records[trade.pk][column] for column in columns)
               for name, trade in (("butterfly", butterfly), ("strangle", strangle), ("calendar", calendar))}
    assert figures == {
        "butterfly": ("Call butterfly 495/500/505", "debit", "1.0000", "1.7000", "70.00", "3", "5.000", "400.00",
                      "100.00", "496.0000;504.0000", "70.00"),
        # Unlimited loss: no return on it.
        "strangle": ("Short strangle 490/510", "credit", "3.8000", "1.5000", "230.00", "2", "0.000", "380.00", "",
                     "486.2000;513.8000", ""),
        # Two expiries: max profit, loss and breakevens need a model of the back month, not known here.
        "calendar": ("Put calendar 500 Dec 18/Jan 15", "debit", "2.0000", "3.2000", "120.00", "2", "0.000", "", "",
                     "", ""),
    }
    assert records[butterfly.pk]["legs"] == (
        "long 1 SPY261218C00495000 @7.0000>7.5000; short 2 SPY261218C00500000 @4.0000>3.5000; "
        "long 1 SPY261218C00505000 @2.0000>1.2000")
