"""Greeks P&L attribution on paths priced by Black–Scholes (the simulated market's own pricing),
where the true split is known: a path where only time passes is all theta, one where only the
stock moves is delta and gamma, and with small steps the residual is small."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics import attribution
from monitoring.marketdata.pricing import black_scholes

START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
STEP = timedelta(seconds=40)  # the monitor's cycle
YEAR = 365.0 * 86_400


def bs_path(*, spots, vols, strike=100.0, days_left=30.0, step=STEP, is_call=True, qty=1, trade_id=1,
            rate=0.0) -> pd.DataFrame:
    """Snapshots of one contract along `spots` and `vols` (one per step), priced and with greeks
    from Black–Scholes at each moment; marks in ten-thousandths, as stored."""
    rows = []
    for n, (spot, vol) in enumerate(zip(spots, vols, strict=True)):
        at = START + n * step
        years = days_left / 365.0 - n * step.total_seconds() / YEAR
        value = black_scholes(spot=spot, strike=strike, years=years, vol=vol, rate=rate, is_call=is_call)
        rows.append({"trade_id": trade_id, "at": at, "mark4": round(value.price * 10_000), "qty": qty,
                     "underlying": spot, "iv": vol, "delta": value.delta, "gamma": value.gamma,
                     "theta": value.theta, "vega": value.vega})
    frame = pd.DataFrame(rows)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame


def gbm(count: int, *, seed: int, spot=100.0, vol=0.3, step=STEP) -> list[float]:
    years = step.total_seconds() / YEAR
    shocks = np.random.default_rng(seed).standard_normal(count - 1) * vol * math.sqrt(years)
    return list(spot * np.exp(np.concatenate([[0.0], np.cumsum(shocks - 0.5 * vol * vol * years)])))


def test_a_path_where_only_time_passes_is_all_theta():
    # A day of 40-second steps, nothing moves but the clock: theta explains the decay.
    count = 24 * 90
    row = attribution.attribute(bs_path(spots=[100.0] * count, vols=[0.3] * count, qty=3)).loc[1]
    assert row["delta"] == row["gamma"] == row["vega"] == 0
    assert row["theta"] < 0 and row["change"] < 0
    assert abs(row["residual"]) <= 0.01 * abs(row["change"]) + 3  # the marks' rounding telescopes: ≤ 1 cent a contract
    assert row["theta"] + row["residual"] == row["change"]


def test_a_path_where_only_the_stock_moves_is_delta_and_gamma():
    # No time passes between quotes (a zero-length step), IV held: only delta and gamma.
    spots = gbm(400, seed=3, step=timedelta(minutes=5))
    path = bs_path(spots=spots, vols=[0.3] * len(spots), step=timedelta(0), is_call=False, qty=2)
    row = attribution.attribute(path).loc[1]
    assert row["theta"] == row["vega"] == 0
    assert row["delta"] != 0 and row["gamma"] > 0  # a long option gains from convexity
    assert abs(row["residual"]) <= 0.01 * (abs(row["delta"]) + abs(row["gamma"])) + 2


def test_small_steps_leave_a_small_residual_on_a_full_path():
    # Stock, vol and time all move: the four terms explain nearly all of the mark's change.
    count = 6 * 90  # six hours of 40-second steps
    spots = gbm(count, seed=11)
    vols = list(0.3 + 0.02 * np.sin(np.linspace(0, 3, count)))
    row = attribution.attribute(bs_path(spots=spots, vols=vols, qty=5)).loc[1]
    moved = sum(abs(row[name]) for name in attribution.GREEKS)
    assert abs(row["residual"]) <= 0.02 * moved + 5  # 2 % of the moves plus the marks' rounding
    assert sum(row[name] for name in attribution.PARTS) == row["change"]


def test_coarse_steps_leave_a_bigger_residual_than_fine_ones():
    # The same five days sampled every 10 minutes and once a day: the error is the sampling's.
    errors = {"fine": 0, "coarse": 0}
    for seed in range(10):
        fine = gbm(721, seed=seed, vol=0.6, step=timedelta(minutes=10))
        for name, spots, step in (("fine", fine, timedelta(minutes=10)), ("coarse", fine[::144], timedelta(days=1))):
            path = bs_path(spots=spots, vols=[0.6] * len(spots), step=step, days_left=20, qty=10)
            errors[name] += abs(attribution.attribute(path).loc[1, "residual"])
    assert errors["fine"] * 10 < errors["coarse"]


def test_steps_without_greeks_are_counted_not_guessed():
    path = bs_path(spots=[100.0, 101.0, 102.0, 103.0], vols=[0.3] * 4)
    path.loc[1, ["delta", "gamma"]] = np.nan  # the second snapshot came without greeks
    row = attribution.attribute(path).loc[1]
    assert row["steps"] == 3 and row["steps_without_greeks"] == 1
    second_step = path.loc[2, "mark4"] - path.loc[1, "mark4"]
    assert row["unattributed"] == second_step
    result = attribution.trade_attribution(row, pnl_cents=int(row["change"]) - 7)
    assert result.available and "1 of 3 steps" in result.note
    assert result.execution == Decimal("-0.07")
    total = sum((getattr(result, name) for name in (*attribution.PARTS, "unattributed", "execution")), Decimal(0))
    assert total == result.pnl


def test_without_greeks_or_snapshots_attribution_is_unavailable_and_says_why():
    path = bs_path(spots=[100.0, 101.0], vols=[0.3] * 2)
    path[["delta", "gamma", "theta", "vega", "iv"]] = np.nan
    blind = attribution.trade_attribution(attribution.attribute(path).loc[1], pnl_cents=500)
    assert not blind.available and blind.note == attribution.NO_GREEKS and blind.theta is None
    lonely = attribution.trade_attribution(attribution.attribute(path.iloc[:1]).loc[1], pnl_cents=0)
    assert not lonely.available and lonely.note == attribution.ONE_SNAPSHOT
    assert attribution.trade_attribution(None, pnl_cents=0).note == attribution.NO_SNAPSHOTS
    assert attribution.trade_attribution(None, pnl_cents=None).note == attribution.NOT_FILLED


def test_many_trades_at_once_equal_each_alone():
    one = bs_path(spots=gbm(50, seed=1), vols=[0.25] * 50, trade_id=7, qty=2)
    two = bs_path(spots=gbm(30, seed=2), vols=[0.4] * 30, trade_id=9, is_call=False)
    together = attribution.attribute(pd.concat([one, two], ignore_index=True))
    for alone in (one, two):
        trade = alone["trade_id"].iloc[0]
        pd.testing.assert_series_equal(together.loc[trade], attribution.attribute(alone).loc[trade])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), vol=st.floats(0.15, 0.8), days_left=st.floats(3, 90),
       moneyness=st.floats(0.85, 1.15), is_call=st.booleans(), qty=st.integers(1, 20))
def test_property_small_steps_explain_almost_everything(seed, vol, days_left, moneyness, is_call, qty):
    count = 90  # an hour of 40-second steps
    spots = gbm(count, seed=seed, vol=vol)
    path = bs_path(spots=spots, vols=[vol] * count, strike=100.0 * moneyness, days_left=days_left,
                   is_call=is_call, qty=qty)
    row = attribution.attribute(path).loc[1]
    moved = sum(abs(row[name]) for name in attribution.GREEKS)
    # Parts add up exactly; the residual is a few % of the moves plus the marks' rounding (≤ 1 cent a contract).
    assert sum(row[name] for name in attribution.PARTS) == row["change"]
    assert abs(row["residual"]) <= 0.03 * moved + qty + 1
