"""Technical indicators over one bar series, vectorised with pandas/numpy and free of I/O.

Every function takes price columns as float `pd.Series` (oldest first) and returns a series of
the same index, NaN where the look-back is not yet filled, so that a short history gives an
honest blank instead of a number computed from too little. `signals` reads the last bar of each
and is what the entry-context collector stores per timeframe.

Conventions (the textbook ones, so the values match charting tools):
- RSI: Wilder's, seeded with the simple mean of the first `period` changes, then smoothed with
  alpha = 1/period;
- EMA: alpha = 2/(span + 1), seeded with the first close (pandas `adjust=False`), as MACD is
  usually computed; MACD 12/26 with a 9-period signal line, histogram = MACD − signal;
- squeeze: Bollinger Bands (SMA 20 ± 2 population standard deviations) inside Keltner Channels
  (SMA 20 ± 1.5 × the 20-bar mean true range), the TTM-squeeze definition; it *fires* on the bar
  where it turns off after being on at the bar before;
- trend: `up` when the close is above its 200-bar SMA and the 50-bar SMA is above it too,
  `down` when both are below, `sideways` otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RSI_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
EMA_FAST, EMA_SLOW = 9, 21
SQUEEZE_LENGTH, BOLLINGER_WIDTH, KELTNER_WIDTH = 20, 2.0, 1.5
TREND_FAST, TREND_SLOW = 50, 200


def rsi(close: pd.Series, period: int = RSI_PERIOD) -> pd.Series:
    """Wilder's relative strength index, 0–100; NaN for the first `period` bars."""
    change = close.diff()
    gains, losses = change.clip(lower=0), -change.clip(upper=0)
    result = pd.Series(np.nan, index=close.index)
    if len(close) <= period:
        return result
    average_gain = _wilder(gains, period)
    average_loss = _wilder(losses, period)
    with np.errstate(divide="ignore", invalid="ignore"):
        strength = average_gain / average_loss
        values = 100 - 100 / (1 + strength)
    # No losses at all: the index is 100 by definition (and 50 when nothing moved).
    values = values.mask(average_loss == 0, np.where(average_gain == 0, 50.0, 100.0))
    result.iloc[period:] = values.to_numpy()
    return result


def _wilder(values: pd.Series, period: int) -> pd.Series:
    """Wilder's smoothing from bar `period` on: seed = mean of the first `period` values after the
    first bar, then (previous × (period − 1) + value) / period, which is an EMA with alpha 1/period."""
    seeded = values.iloc[period:].copy()
    seeded.iloc[0] = values.iloc[1 : period + 1].mean()
    return seeded.ewm(alpha=1 / period, adjust=False).mean()


def ema(close: pd.Series, span: int) -> pd.Series:
    return close.ewm(span=span, adjust=False).mean()


def macd_histogram(close: pd.Series, fast: int = MACD_FAST, slow: int = MACD_SLOW,
                   signal: int = MACD_SIGNAL) -> pd.Series:
    """MACD line minus its signal line; NaN until the slow EMA and the signal have a full look-back."""
    line = ema(close, fast) - ema(close, slow)
    histogram = line - line.ewm(span=signal, adjust=False).mean()
    return histogram.where(np.arange(len(close)) >= slow + signal - 2)


def ema_cross(close: pd.Series, fast: int = EMA_FAST, slow: int = EMA_SLOW) -> pd.Series:
    """+1 while the fast EMA is above the slow one, −1 below, 0 level; NaN before `slow` bars."""
    state = np.sign(ema(close, fast) - ema(close, slow))
    return state.where(np.arange(len(close)) >= slow - 1)


def squeeze(high: pd.Series, low: pd.Series, close: pd.Series, length: int = SQUEEZE_LENGTH,
            bollinger: float = BOLLINGER_WIDTH, keltner: float = KELTNER_WIDTH) -> pd.Series:
    """1.0 where both Bollinger Bands lie inside the Keltner Channel, else 0.0; NaN before `length`
    bars (and before the first true range has a previous close)."""
    middle = close.rolling(length).mean()
    deviation = close.rolling(length).std(ddof=0)
    true_range = pd.concat([high - low, (high - close.shift()).abs(), (low - close.shift()).abs()], axis=1).max(axis=1)
    average_range = true_range.rolling(length).mean()
    inside = ((bollinger * deviation) < (keltner * average_range)).astype(float)
    return inside.where(middle.notna() & average_range.notna())


def squeeze_firing(squeezes: pd.Series) -> bool | None:
    """Whether the squeeze fired at the last bar: it was on at the bar before and is off now (the
    bands broke out of the channel). None when either bar has no squeeze reading."""
    if len(squeezes) < 2 or _blank(squeezes.iloc[-2]) or _blank(squeezes.iloc[-1]):
        return None
    return bool(squeezes.iloc[-2] == 1.0 and squeezes.iloc[-1] == 0.0)


def sma(close: pd.Series, length: int) -> pd.Series:
    return close.rolling(length).mean()


def trend(close: pd.Series, fast: int = TREND_FAST, slow: int = TREND_SLOW) -> pd.Series:
    """`up`, `down` or `sideways` (see the module's docstring); None before `slow` bars."""
    long, short = sma(close, slow), sma(close, fast)
    up = (close > long) & (short > long)
    down = (close < long) & (short < long)
    labels = np.select([up, down], ["up", "down"], default="sideways").astype(object)
    labels[long.isna().to_numpy()] = None
    return pd.Series(labels, index=close.index)


def signals(bars: pd.DataFrame) -> dict:
    """The indicators at the last bar of `bars` (columns high, low, close), JSON-ready: floats
    rounded to 4 places, None where the history is too short for that indicator."""
    close, high, low = (bars[name].astype(float) for name in ("close", "high", "low"))
    if close.empty:
        return {"bars": 0}
    crosses = ema_cross(close)
    state, before = crosses.iloc[-1], crosses.iloc[-2] if len(crosses) > 1 else np.nan
    long = sma(close, TREND_SLOW).iloc[-1]
    squeezes = squeeze(high, low, close)
    return {
        "bars": len(close),
        "rsi14": _number(rsi(close).iloc[-1]),
        "macd_hist": _number(macd_histogram(close).iloc[-1]),
        "ema_9_21_cross": None if np.isnan(state) else {1: "above", -1: "below"}.get(int(state), "level"),
        "ema_9_21_just_crossed": None if np.isnan(state) or np.isnan(before) else bool(state != before),
        "squeeze": None if _blank(flag := squeezes.iloc[-1]) else bool(flag),
        "squeeze_firing": squeeze_firing(squeezes),
        "trend": trend(close).iloc[-1],
        "sma200_distance_pct": None if np.isnan(long) else _number((close.iloc[-1] - long) / long * 100),
    }


def _blank(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _number(value) -> float | None:
    return None if _blank(value) or not np.isfinite(value) else round(float(value), 4)
