"""The stop's and the target's paths on a trade's detail: from the audit log, in a constant number
of queries, moved by the exit-policy runner and by the trader; the positions list shows the stop
the runner left."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from trades.services import exit_policies_apply

START = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York, in session


@pytest.fixture
def clock(market, settings):
    """The wall clock (the audit events' times) and the hand-driven market's move together."""
    settings.EXIT_POLICY_MIN_INTERVAL_SECONDS = 60
    with time_machine.travel(START, tick=False) as traveller:
        def move(minutes: int) -> datetime:
            market.moment = START + timedelta(minutes=minutes)
            traveller.move_to(market.moment)
            return market.moment
        yield move


def _look(market, bid: str, ask: str) -> None:
    """One look of the exit-policy runner at the market (as the monitor's order cycle makes it)."""
    market.set_quote("SPY261218C00570000", bid, ask)
    exit_policies_apply(option_bids=lambda symbols: {s: q.bid for s, q in market.quotes(symbols).items()},
                        underlying_prices=lambda tickers: {}, now=market.moment, today=market.moment.date(),
                        session_close=None, market=market)


def _detail(api_as, user, trade_id):
    return api_as(user).get(f"/api/trades/{trade_id}").json()


def _steps(path):
    return [(step["price"], step["why"]) for step in path]


def test_the_paths_hold_the_open_each_move_and_now(api_as, trader, market, clock, open_body):
    opened = api_as(trader).post("/api/trades", open_body(
        exit_policy={"trail_amount": "0.50", "trail_after_pct": "10", "min_step": "0.10"}), format="json").json()
    fresh = _detail(api_as, trader, opened["id"])
    assert _steps(fresh["stop_path"]) == [("3.0000", "set at the open"), ("3.0000", "now")]
    assert _steps(fresh["target_path"]) == [("6.5000", "set at the open"), ("6.5000", "now")]

    first = clock(5)
    _look(market, "5.00", "5.20")  # +16 %: the trailing stop goes to 5.00 - 0.50
    clock(7)
    _look(market, "5.60", "5.80")  # to 5.10
    listed = api_as(trader).get("/api/trades?status=OPEN").json()["results"]
    assert [(row["id"], row["sl_price"]) for row in listed] == [(opened["id"], "5.1000")]  # the row's stop
    adjusted = api_as(trader).post(f"/api/trades/{opened['id']}/adjust",
                                   {"version": listed[0]["version"], "new_tp": "7.00"}, format="json")
    assert adjusted.status_code == 200, adjusted.json()
    now = clock(9)

    trade = _detail(api_as, trader, opened["id"])
    assert _steps(trade["stop_path"]) == [("3.0000", "set at the open"), ("4.5000", "exit policy: trailing"),
                                          ("5.1000", "exit policy: trailing"), ("5.1000", "now")]
    assert [datetime.fromisoformat(step["at"]) for step in trade["stop_path"][1:]] == [
        first, first + timedelta(minutes=2), now]
    # The trader's adjust of the target wrote the stop too, unchanged: no step of the stop's.
    assert _steps(trade["target_path"]) == [("6.5000", "set at the open"), ("7.0000", "moved by you"),
                                            ("7.0000", "now")]
    assert trade["target_path"][1]["at"] == trade["stop_path"][2]["at"]  # adjusted at minute 7 too


def test_a_closed_trades_paths_end_at_its_close(api_as, trader, market, clock, open_body):
    opened = api_as(trader).post("/api/trades", open_body(exit_policy={"breakeven_after_pct": "10"}),
                                 format="json").json()
    clock(3)
    _look(market, "4.80", "4.90")  # +11.6 %: the stop goes to breakeven
    moved = _detail(api_as, trader, opened["id"])
    closed_at = clock(12)
    closed = api_as(trader).post(f"/api/trades/{opened['id']}/close", {"version": moved["version"]}, format="json")
    assert closed.status_code == 200, closed.json()
    clock(30)
    trade = _detail(api_as, trader, opened["id"])
    assert trade["status"] == "CLOSED"
    assert [step["why"] for step in trade["stop_path"]] == ["set at the open", "exit policy: breakeven",
                                                             "at the close"]
    assert Decimal(trade["stop_path"][1]["price"]) > Decimal(trade["entry_price"])
    assert datetime.fromisoformat(trade["stop_path"][-1]["at"]) == closed_at


def test_the_detail_costs_the_same_queries_however_often_the_stop_moved(api_as, trader, market, clock, open_body):
    client = api_as(trader)
    still = client.post("/api/trades", open_body(qty=1, sl_price="4.00"), format="json").json()
    moving = client.post("/api/trades", open_body(qty=1, sl_price="4.00", exit_policy={"trail_amount": "0.20"}),
                         format="json").json()
    for minute, bid in enumerate(("4.60", "4.90", "5.20", "5.50"), start=2):
        clock(minute * 2)
        _look(market, bid, "5.60")
    counts = []
    for trade in (still, moving):
        with CaptureQueriesContext(connection) as queries:
            body = client.get(f"/api/trades/{trade['id']}").json()
        counts.append((len(queries), len(body["stop_path"])))
    assert counts[1][1] == 2 + 4 and counts[0][1] == 2  # four moves against none
    assert counts[0][0] == counts[1][0]
