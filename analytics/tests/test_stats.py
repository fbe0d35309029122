"""Honest statistics: Wilson intervals, the minimum history for Sharpe and Sortino, calibration
flags only where the data support them, the $-versus-R sentence and the replay comparison."""

import math

import pytest

from analytics import metrics, stats


def _wilson_by_hand(wins, n, z=1.959963984540054):
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return round(centre - half, 4), round(centre + half, 4)


@pytest.mark.parametrize(("wins", "trades"), [(5, 14), (1, 1), (0, 7), (50, 100)])
def test_wilson_interval_matches_the_formula_and_stays_in_zero_to_one(wins, trades):
    low, high = stats.wilson_interval(wins, trades)
    assert (low, high) == pytest.approx(_wilson_by_hand(wins, trades), abs=1e-4)
    assert 0 <= low <= wins / trades <= high <= 1


def test_wilson_interval_of_known_values():
    assert stats.wilson_interval(5, 14) == (0.1634, 0.6124)  # 35.7 %: wide with 14 trades
    assert stats.wilson_interval(3, 3) == (0.4385, 1.0)  # three of three is not "certainly 100 %"
    assert stats.wilson_interval(0, 0) is None
    assert stats.with_win_rate_interval({"wins": 0, "trades": 0})["win_rate_ci"] is None


def test_sharpe_and_sortino_wait_for_twenty_trading_days():
    short = {"days": 5, "annualisation": "sqrt(252)", "risk_free_rate": 0, "sharpe": 7.9, "sortino": 12.1}
    gated = stats.gated_risk_adjusted(short)
    assert gated["sharpe"] is None and gated["sortino"] is None and gated["needs_days"] == 15
    assert gated["note"] == "Needs 15 more trading days (5 of 20) before Sharpe and Sortino mean anything."
    assert stats.gated_risk_adjusted({**short, "days": 19})["note"].startswith("Needs 1 more trading day ")
    enough = stats.gated_risk_adjusted({**short, "days": 20})
    assert (enough["sharpe"], enough["sortino"], enough["needs_days"], enough["note"]) == (7.9, 12.1, 0, None)


def test_expectancy_in_dollars_and_r_explained_only_when_their_signs_differ():
    assert stats.expectancy_disagreement(expectancy="12.00", expectancy_r=0.3, trades=5, r_trades=5) is None
    assert stats.expectancy_disagreement(expectancy="-1.00", expectancy_r=-0.3, trades=5, r_trades=5) is None
    assert stats.expectancy_disagreement(expectancy="0.00", expectancy_r=-0.3, trades=5, r_trades=5) is None
    assert stats.expectancy_disagreement(expectancy=None, expectancy_r=None, trades=0, r_trades=0) is None
    up = stats.expectancy_disagreement(expectancy="16.67", expectancy_r=-0.4, trades=3, r_trades=3)
    assert up.startswith("Positive in dollars but negative in R") and up.count(".") == 1
    down = stats.expectancy_disagreement(expectancy="-5.00", expectancy_r=0.2, trades=4, r_trades=3)
    assert down.startswith("Negative in dollars but positive in R")
    assert "leaves out 1 of the 4 trades" in down


def test_expectancy_signs_can_really_disagree_on_a_book():
    """A book where they do: one $500 win on a $1,000 risk, two $100 losses on $100 risks."""
    import pandas as pd

    book = pd.DataFrame({"pnl": [50_000, -10_000, -10_000], "risk": [100_000, 10_000, 10_000]})
    summary = metrics.summary(book)
    assert summary["expectancy"] == "100.00" and summary["expectancy_r"] == pytest.approx(-0.5)
    assert stats.expectancy_disagreement(expectancy=summary["expectancy"], expectancy_r=summary["expectancy_r"],
                                         trades=3, r_trades=3).startswith("Positive in dollars")


def _bucket(number, wins, trades):
    return {"bucket": number, "wins": wins, "trades": trades, "win_rate": wins / trades}


def test_calibration_flags_a_fall_only_beyond_the_intervals_of_full_buckets():
    # A fall from 3/4 to 1/4 in tiny buckets: says so, flags nothing.
    thin = stats.calibration_verdict([_bucket(1, 3, 4), _bucket(2, 1, 4)])
    assert thin["verdict"] == "too_few_trades" and [row["enough"] for row in thin["buckets"]] == [False, False]
    assert thin["reason"].startswith("Too few trades: 2 of 2 bucket(s) have fewer than 10 trades")
    # 6/10 then 4/10: a fall, but inside the noise.
    noisy = stats.calibration_verdict([_bucket(1, 6, 10), _bucket(2, 4, 10)])
    assert noisy["verdict"] == "consistent"
    # 18/20 then 3/20: intervals [0.70, 0.97] and [0.05, 0.36] do not overlap: flagged.
    real = stats.calibration_verdict([_bucket(1, 18, 20), _bucket(2, 3, 20), _bucket(3, 1, 2)])
    assert real["verdict"] == "non_monotonic" and "D2" in real["reason"] and "D1" in real["reason"]
    assert real["buckets"][2]["enough"] is False and real["buckets"][0]["win_rate_ci"][0] > 0.69
    assert stats.calibration_verdict([])["verdict"] == "too_few_trades"


@pytest.mark.parametrize(("best", "own", "verdict"), [(21250, 34100, "own_better"), (40000, 34100, "grid_better"),
                                                     (34100, 34100, "same")])
def test_replay_comparison_is_against_the_own_brackets_replayed(best, own, verdict):
    result = stats.replay_comparison(best_cents=best, own_cents=own, actual_cents=34100)
    assert result["verdict"] == verdict and result["gap_to_booked_cents"] == 34100 - own
    if verdict == "own_better":
        assert "did better than every bracket on the grid" in result["sentence"]


def test_underwater_is_equity_below_its_running_peak():
    assert metrics.underwater(["5200.00", "5100.00", "5050.00", "5210.00"], "5000.00") == \
        ["0.00", "-100.00", "-150.00", "0.00"]
    assert metrics.underwater(["4900.00", "4950.00"], "5000.00") == ["-100.00", "-50.00"]
