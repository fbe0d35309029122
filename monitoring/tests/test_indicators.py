"""The indicators against known values: Wilder's classic RSI table and hand-worked series."""

import math

import numpy as np
import pandas as pd
import pytest

from monitoring import indicators

# The RSI worked example of StockCharts' ChartSchool ("RSI" spreadsheet, after Wilder 1978):
# 33 closes, and the 14-day RSI from the 15th close on, to two decimals.
WILDER_CLOSES = [
    44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433, 46.0826, 45.8931,
    46.0328, 45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116, 46.2222, 45.6439, 46.2122, 46.2521,
    45.7137, 46.4515, 45.7835, 45.3548, 44.0288, 44.1783, 44.2181, 44.5672, 43.4205, 42.6628, 43.1314,
]
WILDER_RSI = [
    70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38, 54.71, 50.42, 39.99, 41.46,
    41.87, 45.46, 37.30, 33.08, 37.77,
]


def _bars(closes, spread=0.5):
    close = pd.Series(closes, dtype=float)
    return pd.DataFrame({"close": close, "high": close + spread, "low": close - spread})


def test_rsi_matches_wilders_worked_example():
    values = indicators.rsi(pd.Series(WILDER_CLOSES))
    assert values.iloc[:14].isna().all()  # no value before 14 changes
    assert values.iloc[14:].round(2).tolist() == WILDER_RSI


def test_rsi_at_its_bounds():
    assert indicators.rsi(pd.Series(range(1, 31), dtype=float)).iloc[-1] == 100  # only gains
    assert indicators.rsi(pd.Series(range(30, 0, -1), dtype=float)).iloc[-1] == 0  # only losses
    assert indicators.rsi(pd.Series([50.0] * 30)).iloc[-1] == 50  # nothing moved
    assert indicators.rsi(pd.Series([1.0, 2.0, 3.0])).isna().all()  # too short


def _ema_by_hand(values, span):
    alpha, level, out = 2 / (span + 1), values[0], []
    for value in values:
        level = alpha * value + (1 - alpha) * level
        out.append(level)
    return out


def test_macd_histogram_follows_the_recursion_step_by_step():
    closes = WILDER_CLOSES + WILDER_CLOSES[::-1]
    line = np.subtract(_ema_by_hand(closes, 12), _ema_by_hand(closes, 26))
    expected = line - np.array(_ema_by_hand(list(line), 9))
    histogram = indicators.macd_histogram(pd.Series(closes))
    assert histogram.iloc[:33].isna().all()  # 26 + 9 − 1 closes before the first value
    assert histogram.iloc[33:].to_numpy() == pytest.approx(expected[33:], abs=1e-12)


def test_macd_on_a_steady_climb_settles_at_the_lag_difference():
    # On a line rising one point a bar, an EMA of span N lags by (N − 1)/2 bars: MACD → 12.5 − 5.5 = 7,
    # the signal line catches up, and the histogram goes to zero.
    closes = pd.Series(np.arange(400, dtype=float))
    line = indicators.ema(closes, 12) - indicators.ema(closes, 26)
    assert line.iloc[-1] == pytest.approx(7.0, abs=1e-9)
    assert indicators.macd_histogram(closes).iloc[-1] == pytest.approx(0.0, abs=1e-9)


def test_ema_cross_reports_the_state_and_the_bar_it_flipped():
    closes = [100.0 - bar for bar in range(40)] + [80.0 + 5 * bar for bar in range(1, 6)]
    states = indicators.ema_cross(pd.Series(closes))
    assert states.iloc[:20].isna().all()
    flipped = states.diff().fillna(0).to_numpy().nonzero()[0]
    assert len(flipped) == 1 and states.iloc[flipped[0]] == 1 and states.iloc[flipped[0] - 1] == -1
    at_flip = indicators.signals(_bars(closes[: flipped[0] + 1]))
    assert at_flip["ema_9_21_cross"] == "above" and at_flip["ema_9_21_just_crossed"] is True
    assert flipped[0] < len(closes) - 1  # two bars later it is still above, no longer a fresh cross
    after = indicators.signals(_bars(closes))
    assert after["ema_9_21_cross"] == "above" and after["ema_9_21_just_crossed"] is False


def test_squeeze_is_on_when_the_bollinger_bands_sit_inside_the_keltner_channel():
    # Flat closes, bars two points tall: no deviation at all, a true range of 2 → squeeze.
    flat = indicators.squeeze(*_hlc([100.0] * 25, spread=1.0))
    assert flat.iloc[:19].isna().all() and flat.iloc[-1] == 1.0
    # A one-point-a-bar climb on bars of no height: Bollinger ±2σ = ±11.5, Keltner ±1.5 × 1 → no squeeze.
    climb = indicators.squeeze(*_hlc(np.arange(25, dtype=float), spread=0.0))
    assert climb.iloc[-1] == 0.0


def test_the_squeeze_fires_on_the_bar_it_turns_off_after_being_on():
    # 25 quiet bars (squeeze on), then a 30-point jump: the bands burst out of the channel.
    quiet = [100.0] * 25
    fired = indicators.signals(_bars([*quiet, 130.0], spread=1.0))
    assert fired["squeeze"] is False and fired["squeeze_firing"] is True
    # One bar later it is still off, but it was off before too: no longer firing.
    after = indicators.signals(_bars([*quiet, 130.0, 130.0], spread=1.0))
    assert after["squeeze"] is False and after["squeeze_firing"] is False
    still = indicators.signals(_bars(quiet, spread=1.0))
    assert still["squeeze"] is True and still["squeeze_firing"] is False
    # The first bar with a squeeze reading has no bar before it to compare: a blank, not a guess.
    assert indicators.signals(_bars(quiet[:20], spread=1.0))["squeeze_firing"] is None


def _hlc(closes, spread):
    bars = _bars(closes, spread)
    return bars["high"], bars["low"], bars["close"]


def test_trend_and_distance_from_the_200_bar_average():
    rising = indicators.signals(_bars(np.arange(1, 251, dtype=float)))
    # SMA 200 of 51..250 is 150.5: the last close, 250, is 66.1130 % above it.
    assert rising["trend"] == "up"
    assert rising["sma200_distance_pct"] == pytest.approx((250 - 150.5) / 150.5 * 100, abs=1e-4)
    falling = indicators.signals(_bars(np.arange(250, 0, -1, dtype=float)))
    assert falling["trend"] == "down" and falling["sma200_distance_pct"] < 0
    assert indicators.trend(pd.Series(np.arange(199, dtype=float))).iloc[-1] is None


def test_a_short_history_gives_blanks_not_guesses():
    values = indicators.signals(_bars(WILDER_CLOSES[:20]))
    assert values["bars"] == 20 and values["rsi14"] == pytest.approx(WILDER_RSI[5], abs=0.005)
    assert values["macd_hist"] is None and values["ema_9_21_cross"] is None
    assert values["squeeze"] in (True, False)  # 20 bars are enough for the 20-bar bands
    assert values["squeeze_firing"] is None  # but not for the bar before
    assert values["trend"] is None and values["sma200_distance_pct"] is None
    assert all(not isinstance(value, float) or math.isfinite(value) for value in values.values())
