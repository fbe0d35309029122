"""The metrics on hand-computed frames (no database): every number below is worked out by hand."""

import json
import math
import statistics
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from analytics import metrics


def _frame(pnls_dollars, risks_dollars=None, **columns):
    n = len(pnls_dollars)
    risks = risks_dollars if risks_dollars is not None else [100] * n
    return pd.DataFrame({
        "id": range(1, n + 1),
        "pnl": np.array([round(p * 100) for p in pnls_dollars], dtype="int64"),
        "risk": np.array([round(r * 100) for r in risks], dtype="int64"),
        "close_date": pd.to_datetime([datetime(2026, 12, 1 + i, 15, tzinfo=UTC) for i in range(n)], utc=True),
        **columns,
    })


def test_summary_of_four_trades():
    # +200, -100, -50, +160 with $100 of planned risk each.
    result = metrics.summary(_frame([200, -100, -50, 160]))
    assert result == {
        "trades": 4, "wins": 2, "losses": 2, "breakeven": 0, "win_rate": 0.5,
        "net_pnl": "210.00", "gross_profit": "360.00", "gross_loss": "-150.00",
        "profit_factor": 2.4,  # 360 / 150
        "avg_win": "180.00", "avg_loss": "-75.00", "payoff_ratio": 2.4,  # 180 / 75
        "expectancy": "52.50",  # 210 / 4
        "expectancy_r": 0.525,  # (2 - 1 - 0.5 + 1.6) / 4
        "largest_win": "200.00", "largest_loss": "-100.00",
    }


def test_empty_summary_is_all_nulls_and_zeros():
    result = metrics.summary(_frame([]))
    assert result["trades"] == 0 and result["net_pnl"] == "0.00"
    for name in ("win_rate", "profit_factor", "avg_win", "avg_loss", "payoff_ratio", "expectancy", "expectancy_r",
                 "largest_win", "largest_loss"):
        assert result[name] is None, name


def test_one_winning_trade_has_no_profit_factor_rather_than_infinity():
    result = metrics.summary(_frame([75.5], risks_dollars=[151]))
    assert result["win_rate"] == 1.0 and result["expectancy"] == "75.50" and result["expectancy_r"] == 0.5
    assert result["profit_factor"] is None and result["avg_loss"] is None and result["payoff_ratio"] is None
    assert result["largest_win"] == "75.50" and result["largest_loss"] is None


def test_breakeven_trades_are_neither_wins_nor_losses_and_r_skips_trades_without_risk():
    result = metrics.summary(_frame([0, -30, 10], risks_dollars=[0, 60, -5]))
    assert (result["wins"], result["losses"], result["breakeven"]) == (1, 1, 1)
    assert result["expectancy_r"] == -0.5  # only the second trade had a stop below its entry
    assert result["avg_win"] == "10.00" and result["expectancy"] == "-6.67"  # -20 / 3, half-up to the cent


def test_equity_curve_and_drawdown():
    frame = _frame([200, -100, -50, 160])
    curve, drawdown = metrics.equity_curve(frame, 500_000)
    assert curve["equity"] == ["5200.00", "5100.00", "5050.00", "5210.00"]
    assert curve["pnl"] == ["200.00", "-100.00", "-50.00", "160.00"]
    assert drawdown == {
        "amount": "-150.00", "pct": round(-150 / 5200 * 100, 4),
        "peak_at": "2026-12-01T15:00:00Z", "trough_at": "2026-12-03T15:00:00Z",
        "recovered_at": "2026-12-04T15:00:00Z",
    }


def test_drawdown_from_the_starting_balance_not_recovered():
    _, drawdown = metrics.equity_curve(_frame([-100, 40]), 100_000)
    assert drawdown == {"amount": "-100.00", "pct": -10.0, "peak_at": None,
                        "trough_at": "2026-12-01T15:00:00Z", "recovered_at": None}


def test_no_drawdown_when_equity_only_rises_and_none_without_trades():
    for pnls in ([10, 20], []):
        _, drawdown = metrics.equity_curve(_frame(pnls), 100_000)
        assert drawdown["amount"] == "0.00" and drawdown["pct"] == 0.0 and drawdown["trough_at"] is None


def test_sharpe_and_sortino_count_sessions_without_closes_as_zero():
    daily = pd.DataFrame({"pnl": [20000, -15000, 16000], "trades": [1, 2, 1]},
                         index=[date(2026, 12, 1), date(2026, 12, 2), date(2026, 12, 4)])
    sessions = [date(2026, 12, d) for d in (1, 2, 3, 4)]
    result = metrics.risk_adjusted(daily, sessions)
    days = [200, -150, 0, 160]
    assert result["days"] == 4
    assert result["sharpe"] == round(statistics.mean(days) / statistics.stdev(days) * math.sqrt(252), 4)
    # downside deviation: sqrt((150²) / 4) = 75
    assert result["sortino"] == round(52.5 / 75 * math.sqrt(252), 4)


@pytest.mark.parametrize("days", [[100], [50, 50], [10, 20]])
def test_risk_ratios_are_null_when_undefined(days):
    daily = pd.DataFrame({"pnl": [d * 100 for d in days], "trades": 1},
                         index=[date(2026, 12, 1 + i) for i in range(len(days))])
    result = metrics.risk_adjusted(daily, [])
    if len(days) < 2:
        assert result["sharpe"] is None and result["sortino"] is None
    elif days[0] == days[1]:
        assert result["sharpe"] is None  # no variation
    else:
        assert result["sortino"] is None and result["sharpe"] is not None  # no losing day


def test_deciles_are_equal_count_buckets_lowest_score_first():
    # 20 trades, score i, P&L +i dollars for even i else -i: two trades a decile.
    scores = list(range(20))
    frame = _frame([i if i % 2 == 0 else -i for i in scores], card_score=[float(s) for s in scores])
    buckets = metrics.score_buckets(frame, "card_score")
    assert [b["bucket"] for b in buckets] == list(range(1, 11))
    assert [(b["score_min"], b["score_max"]) for b in buckets] == [(2.0 * k, 2.0 * k + 1) for k in range(10)]
    assert all(b["trades"] == 2 and b["win_rate"] == 0.5 for b in buckets[1:])
    assert buckets[0]["wins"] == 0  # score 0 is a breakeven trade
    assert [b["net_pnl"] for b in buckets][:3] == ["-1.00", "-1.00", "-1.00"]  # (2k) - (2k+1)


def test_fewer_trades_than_buckets_and_missing_scores():
    frame = _frame([10, -10, 30, 5], card_score=[1.0, None, 3.0, 2.0])
    buckets = metrics.score_buckets(frame, "card_score")
    assert [(b["score_min"], b["net_pnl"]) for b in buckets] == [(1.0, "10.00"), (2.0, "5.00"), (3.0, "30.00")]
    assert metrics.score_buckets(frame.assign(card_score=None), "card_score") == []


def test_monotonicity_flags_a_score_whose_outcomes_fall():
    rising = [{"win_rate": 0.2, "expectancy": "-5.00"}, {"win_rate": 0.5, "expectancy": "1.00"},
              {"win_rate": 0.5, "expectancy": "3.00"}]
    assert metrics.monotonicity(rising) == {"monotonic": True, "win_rate_monotonic": True,
                                            "expectancy_monotonic": True, "spearman": 1.0}
    falling = [*rising, {"win_rate": 0.7, "expectancy": "2.00"}]
    result = metrics.monotonicity(falling)
    assert result["monotonic"] is False and result["win_rate_monotonic"] is True
    assert result["expectancy_monotonic"] is False and result["spearman"] == 0.8
    assert metrics.monotonicity(rising[:1])["monotonic"] is None


def test_scalars_never_leak_nan_or_infinity():
    assert metrics.number(float("nan")) is None and metrics.number(float("inf")) is None
    assert metrics.money(float("nan")) is None and metrics.money(-5) == "-0.05"
    assert metrics.money_series(np.array([-5, 123456, 0])) == ["-0.05", "1234.56", "0.00"]
    json.dumps(metrics.summary(_frame([])), allow_nan=False)


def test_pnl_histogram_has_round_buckets_with_an_edge_at_zero():
    # -100 .. +200: a $300 span in about 16 buckets is $18.75, rounded up to $20; the first edge is -100.
    result = metrics.pnl_histogram(_frame([200, -100, -50, 160, 0, -0.01, 19.99]), buckets=16)
    assert result["bucket_width"] == "20.00"
    buckets = result["buckets"]
    assert (buckets[0]["from"], buckets[-1]["to"]) == ("-100.00", "220.00") and len(buckets) == 16
    by_start = {bucket["from"]: (bucket["trades"], bucket["wins"]) for bucket in buckets}
    assert by_start["-100.00"] == (1, 0) and by_start["-60.00"] == (1, 0)  # -50 is in [-60, -40)
    assert by_start["-20.00"] == (1, 0)  # -0.01
    assert by_start["0.00"] == (2, 1)  # the breakeven trade and +19.99
    assert by_start["160.00"] == (1, 1) and by_start["200.00"] == (1, 1)
    assert sum(bucket["trades"] for bucket in buckets) == 7


def test_pnl_histogram_of_one_trade_and_of_none():
    assert metrics.pnl_histogram(_frame([])) == {"bucket_width": None, "buckets": []}
    assert metrics.pnl_histogram(_frame([12.34]))["buckets"] == [
        {"from": "12.00", "to": "13.00", "trades": 1, "wins": 1}]  # at least $1 wide
    assert [metrics.bucket_width(span, 10) for span in (0, 999, 1001, 2600, 4500, 123_456)] == \
        [100, 100, 200, 500, 500, 20_000]
