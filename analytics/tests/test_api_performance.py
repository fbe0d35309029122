"""GET /api/analytics/performance against a hand-computed book, and its edges: nothing, one
trade, filters, another user's rows, query counts."""

import math
import statistics
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import ClosedTradeFactory
from trades.models import CloseReason

URL = "/api/analytics/performance"


def _close(trader, *, at, pnl, reason, strategy, ticker="SPY", hold="1.00", **scores):
    # $2.00 entry, $1.00 stop, one contract: $100 of planned risk.
    return ClosedTradeFactory(
        owner=trader, ticker=ticker, qty=1, entry_price=Decimal("2.00"), sl_price=Decimal("1.00"),
        tp_price=Decimal("4.00"), close_date=at, entry_date=at.replace(hour=14, minute=0),
        close_price=Decimal("2.00") + Decimal(pnl) / 100, realized_pnl=Decimal(pnl), close_reason=reason,
        strategy=strategy, hold_duration_h=Decimal(hold), **scores,
    )


@pytest.fixture
def book(trader):
    """Closes on Tue 1, Wed 2 (twice: the second at 22:00 New York, already Thursday in UTC), Fri 4 Dec."""
    return [
        _close(trader, at=datetime(2026, 12, 1, 15, tzinfo=UTC), pnl=200, reason=CloseReason.TP_HIT,
               strategy="momentum", hold="1.50", card_score=Decimal("9"), ai_score=Decimal("0.9"), ai_verdict="BUY",
               gate_verdict="PASS"),
        _close(trader, at=datetime(2026, 12, 2, 15, tzinfo=UTC), pnl=-100, reason=CloseReason.SL_HIT,
               strategy="momentum", ticker="QQQ", hold="2.00", card_score=Decimal("5"), ai_score=Decimal("0.2"),
               ai_verdict="BUY", gate_verdict="PASS"),
        _close(trader, at=datetime(2026, 12, 3, 3, tzinfo=UTC), pnl=-50, reason=CloseReason.MANUAL_CLOSE,
               strategy="breakout", hold="4.00", card_score=Decimal("3"), ai_score=Decimal("0.6"), ai_verdict="SKIP",
               gate_verdict="PASS"),
        _close(trader, at=datetime(2026, 12, 4, 15, tzinfo=UTC), pnl=160, reason=CloseReason.TP_HIT,
               strategy="breakout", hold="0.50", card_score=Decimal("7"), gate_verdict="WARN"),
    ]


def test_the_hand_computed_book(api_as, trader, book, strict_json):
    response = api_as(trader).get(URL)
    assert response.status_code == 200
    body = strict_json(response)
    assert body["summary"] == {
        "trades": 4, "wins": 2, "losses": 2, "breakeven": 0, "win_rate": 0.5, "net_pnl": "210.00",
        "gross_profit": "360.00", "gross_loss": "-150.00", "profit_factor": 2.4, "avg_win": "180.00",
        "avg_loss": "-75.00", "payoff_ratio": 2.4, "expectancy": "52.50", "expectancy_r": 0.525,
        "largest_win": "200.00", "largest_loss": "-100.00", "avg_hold_hours": 2.0,
        "win_rate_ci": [0.15, 0.85], "r_trades": 4, "expectancy_note": None,
    }
    # Equity from the $5,000 default balance: 5200, 5100, 5050, 5210.
    assert body["max_drawdown"] == {
        "amount": "-150.00", "pct": -2.8846, "peak_at": "2026-12-01T15:00:00Z",
        "trough_at": "2026-12-03T03:00:00Z", "recovered_at": "2026-12-04T15:00:00Z",
    }
    assert body["equity_curve"]["equity"] == ["5200.00", "5100.00", "5050.00", "5210.00"]
    assert body["equity_curve"]["trade_ids"] == [trade.pk for trade in book]
    # New York dates: the 03:00 UTC close belongs to Wednesday; Thursday is a session without closes.
    assert body["daily"] == [{"date": "2026-12-01", "pnl": "200.00", "trades": 1},
                             {"date": "2026-12-02", "pnl": "-150.00", "trades": 2},
                             {"date": "2026-12-04", "pnl": "160.00", "trades": 1}]
    # Four sessions are far from enough to annualise a daily ratio: none is shown, the gap is said.
    assert body["risk_adjusted"]["days"] == 4 and body["risk_adjusted"]["needs_days"] == 16
    assert body["risk_adjusted"]["sharpe"] is None and body["risk_adjusted"]["sortino"] is None
    assert body["risk_adjusted"]["note"] == \
        "Needs 16 more trading days (4 of 20) before Sharpe and Sortino mean anything."
    assert body["equity_curve"]["drawdown"] == ["0.00", "-100.00", "-150.00", "0.00"]
    reasons = {row["close_reason"]: row for row in body["by_close_reason"]}
    assert (reasons["TP_HIT"]["trades"], reasons["TP_HIT"]["net_pnl"], reasons["TP_HIT"]["avg_hold_hours"]) == \
        (2, "360.00", 1.0)
    assert reasons["SL_HIT"]["net_pnl"] == "-100.00" and reasons["MANUAL_CLOSE"]["avg_hold_hours"] == 4.0
    strategies = {row["strategy"]: row["net_pnl"] for row in body["by_strategy"]}
    assert strategies == {"breakout": "110.00", "momentum": "100.00"} and body["best_strategy"] == "breakout"
    assert {row["ticker"]: row["trades"] for row in body["by_ticker"]} == {"QQQ": 1, "SPY": 3}
    assert {row["ticker"]: row["win_rate_ci"] for row in body["by_ticker"]} == \
        {"QQQ": [0.0, 0.7935], "SPY": [0.2077, 0.9385]}
    # Entered at 14:00 UTC = 09:00 New York; the factory's expiry is days after the entry.
    assert [(row["entry_hour"], row["trades"]) for row in body["by_entry_hour"]] == [("09:00", 4)]
    assert sum(row["trades"] for row in body["by_dte"]) == 4
    assert {row["ai_verdict"]: row["net_pnl"] for row in body["by_ai_verdict"]} == \
        {"": "160.00", "BUY": "100.00", "SKIP": "-50.00"}
    assert {row["gate_verdict"]: row["trades"] for row in body["by_gate_verdict"]} == {"PASS": 3, "WARN": 1}
    # card scores 3, 5, 7, 9 -> four buckets of one trade: -50, -100, +160, +200
    assert [row["net_pnl"] for row in body["by_card_score_decile"]] == ["-50.00", "-100.00", "160.00", "200.00"]
    # ai scores 0.2, 0.6, 0.9 (the fourth trade has none)
    assert [row["score_min"] for row in body["by_ai_score_decile"]] == [0.2, 0.6, 0.9]


def test_nothing_closed_gives_zeros_and_nulls(api_as, trader, strict_json):
    body = strict_json(api_as(trader).get(URL))
    assert body["summary"]["trades"] == 0 and body["summary"]["win_rate"] is None
    assert body["summary"]["avg_hold_hours"] is None and body["best_strategy"] is None
    assert body["max_drawdown"]["amount"] == "0.00"
    assert body["risk_adjusted"] == {"days": 0, "annualisation": "sqrt(252)", "risk_free_rate": 0,
                                     "sharpe": None, "sortino": None, "needs_days": 20,
                                     "note": "Needs 20 more trading days (0 of 20) before Sharpe and Sortino mean "
                                             "anything."}
    assert body["equity_curve"]["equity"] == [] and body["daily"] == []
    assert body["by_strategy"] == [] and body["by_card_score_decile"] == []


def test_one_losing_trade(api_as, trader, strict_json):
    _close(trader, at=datetime(2026, 12, 1, 15, tzinfo=UTC), pnl=-40, reason=CloseReason.SL_HIT, strategy="x")
    body = strict_json(api_as(trader).get(URL))
    assert body["summary"]["win_rate"] == 0.0 and body["summary"]["profit_factor"] == 0.0
    assert body["summary"]["expectancy_r"] == -0.4 and body["summary"]["largest_win"] is None
    assert body["max_drawdown"]["pct"] == -0.8 and body["max_drawdown"]["peak_at"] is None
    assert body["risk_adjusted"]["days"] == 1 and body["risk_adjusted"]["sharpe"] is None
    assert body["best_strategy"] is None


def test_open_trades_do_not_count(api_as, trader, book):
    from tests.factories import PaperTradeFactory

    PaperTradeFactory(owner=trader)
    assert api_as(trader).get(URL).json()["summary"]["trades"] == 4


@pytest.mark.parametrize(("query", "trades"), [
    ("?from=2026-12-02", 3),
    ("?to=2026-12-02", 3),  # the 22:00 New York close on the 2nd is in
    ("?from=2026-12-03&to=2026-12-03", 0),
    ("?strategy=breakout", 2),
    ("?from=2026-12-02&to=2026-12-04&strategy=momentum", 1),
])
def test_filters_use_new_york_dates(api_as, trader, book, query, trades):
    body = api_as(trader).get(URL + query).json()
    assert body["summary"]["trades"] == trades
    assert body["period"]["name"] == ("custom" if "from=" in query or "to=" in query else "all")


@pytest.mark.parametrize("query", ["?from=yesterday", "?from=2026-12-05&to=2026-12-01"])
def test_bad_filters_are_400(api_as, trader, query):
    response = api_as(trader).get(URL + query)
    assert response.status_code == 400 and response.json()["type"] == "validation_error"


def test_another_users_trades_never_count(api_as, trader, other_trader, book):
    _close(other_trader, at=datetime(2026, 12, 1, 16, tzinfo=UTC), pnl=-190, reason=CloseReason.SL_HIT,
           strategy="momentum")
    body = api_as(trader).get(URL).json()
    assert body["summary"]["trades"] == 4 and body["summary"]["largest_loss"] == "-100.00"
    assert api_as(other_trader).get(URL).json()["summary"]["net_pnl"] == "-190.00"


def test_anonymous_is_refused(db, client):
    assert client.get(URL).status_code in (401, 403)


def test_query_count_does_not_grow_with_trades(api_as, trader, book):
    client = api_as(trader)
    with CaptureQueriesContext(connection) as few:
        assert client.get(URL).status_code == 200
    for day in range(7, 12):
        _close(trader, at=datetime(2026, 12, day, 15, tzinfo=UTC), pnl=10, reason=CloseReason.TP_HIT,
               strategy=f"s{day}", ticker=f"T{chr(65 + day)}", card_score=Decimal(day))
    with CaptureQueriesContext(connection) as many:
        assert client.get(URL).status_code == 200
    assert len(many) == len(few)


def test_the_closed_trades_are_read_once_per_request(api_as, trader, book):
    """The metrics' frame and the greeks attribution come from one read of the closed trades (with
    their stored forensics); the snapshots of those not attributed yet are a query of their own."""
    with CaptureQueriesContext(connection) as queries:
        assert api_as(trader).get(URL).status_code == 200
    reads = [query["sql"][:60] for query in queries if query["sql"].startswith('SELECT "trades_papertrade"')]
    assert len(reads) == 1, reads


def test_sharpe_and_sortino_from_twenty_trading_days(api_as, trader):
    """20 sessions of December 2026 (the 25th is a holiday) with one close each: now annualised."""
    from monitoring import clock

    sessions = clock.trading_days(date(2026, 12, 1), date(2026, 12, 29))
    assert len(sessions) == 20
    days = [(-1) ** n * (n * 10 + 20) + 15 for n in range(20)]
    for session, pnl in zip(sessions, days, strict=True):
        _close(trader, at=datetime(session.year, session.month, session.day, 15, tzinfo=UTC), pnl=pnl,
               reason=CloseReason.MANUAL_CLOSE, strategy="x")
    ratios = api_as(trader).get(URL).json()["risk_adjusted"]
    assert ratios["days"] == 20 and ratios["needs_days"] == 0 and ratios["note"] is None
    assert ratios["sharpe"] == round(statistics.mean(days) / statistics.stdev(days) * math.sqrt(252), 4)
    downside = math.sqrt(sum(min(day, 0) ** 2 for day in days) / len(days))
    assert ratios["sortino"] == round(statistics.mean(days) / downside * math.sqrt(252), 4)


def test_expectancy_in_dollars_and_r_disagreeing_is_explained(api_as, trader):
    # One $500 win on $1,000 of planned risk (10 contracts), two $100 losses on $100 each.
    ClosedTradeFactory(owner=trader, qty=10, entry_price=Decimal("2.00"), sl_price=Decimal("1.00"),
                       close_price=Decimal("2.50"), close_date=datetime(2026, 12, 1, 15, tzinfo=UTC))
    for day in (2, 3):
        _close(trader, at=datetime(2026, 12, day, 15, tzinfo=UTC), pnl=-100, reason=CloseReason.SL_HIT, strategy="x")
    summary = api_as(trader).get(URL).json()["summary"]
    assert summary["expectancy"] == "100.00" and summary["expectancy_r"] == -0.5
    assert summary["expectancy_note"].startswith("Positive in dollars but negative in R")


# --- Periods -----------------------------------------------------------------------------------------

NOW = datetime(2026, 12, 4, 20, 30, tzinfo=UTC)  # Friday 4 Dec 2026, 15:30 in New York


@pytest.fixture
def pinned_now():
    import time_machine

    with time_machine.travel(NOW, tick=False):
        yield


@pytest.mark.parametrize(("query", "trades", "start", "end"), [
    ("", 4, None, None),
    ("?period=all", 4, None, None),
    ("?period=today", 1, "2026-12-04", "2026-12-04"),
    ("?period=week", 4, "2026-11-30", "2026-12-04"),
    ("?period=month", 4, "2026-12-01", "2026-12-04"),
    ("?period=ytd", 4, "2026-01-01", "2026-12-04"),
    ("?period=custom&start=2026-12-02&end=2026-12-03", 2, "2026-12-02", "2026-12-03"),  # the 22:00 NY close is in
    ("?start=2026-12-01&end=2026-12-01", 1, "2026-12-01", "2026-12-01"),
    ("?period=custom&start=2026-12-02", 3, "2026-12-02", None),  # open-ended: since the 2nd
    ("?end=2026-12-01", 1, None, "2026-12-01"),
    ("?period=week&strategy=breakout", 2, "2026-11-30", "2026-12-04"),
])
def test_periods_are_new_york_dates_from_the_pinned_now(api_as, trader, book, pinned_now, query, trades, start, end):
    body = api_as(trader).get(URL + query).json()
    assert body["summary"]["trades"] == trades
    assert (body["period"]["start"], body["period"]["end"]) == (start, end)


def test_a_trade_from_last_year_leaves_year_to_date(api_as, trader, book, pinned_now):
    _close(trader, at=datetime(2026, 1, 1, 4, tzinfo=UTC), pnl=-10, reason=CloseReason.SL_HIT, strategy="x")
    # 04:00 UTC on 1 Jan is still 31 Dec in New York: last year.
    assert api_as(trader).get(URL + "?period=ytd").json()["summary"]["trades"] == 4
    assert api_as(trader).get(URL + "?period=all").json()["summary"]["trades"] == 5


@pytest.mark.parametrize(("query", "field", "words"), [
    ("?period=fortnight", "period", "Pick a period: today, week, month, ytd, all, custom."),
    ("?period=custom", "start", "A custom period needs its first day, its last day, or both."),
    ("?period=custom&start=2026-12-05&end=2026-12-01", "end", "The range ends before it starts"),
    ("?period=week&start=2026-12-01", "start", "Start and end dates go with the custom period only."),
    ("?period=week&from=2026-12-01", "period", "Pick either a period or from/to dates, not both."),
    ("?period=custom&start=someday&end=2026-12-01", "start", "Date has wrong format"),
    ("?period=", "period", "May not be blank"),
])
def test_bad_periods_are_field_level_400s(api_as, trader, pinned_now, query, field, words):
    response = api_as(trader).get(URL + query)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert any(error["attr"] == field and error["detail"].startswith(words) for error in errors), errors
