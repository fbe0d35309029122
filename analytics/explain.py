"""How one trade reads in its detail: its forensic targets and its entry context in a trader's
words (labels and units, never a raw key), and its greeks attribution. Pure: the selectors pass
the rows in, the trade detail's `explanation` field carries what these return.

Each readable row is `{"label", "value", "text"}`: `value` as stored (a number, a string, a
boolean or null) for a page that computes, `text` ready to read ("+1.25 %", "Yes", "$590.10").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from .models import BarFallback, FirstTouch, TradeForensics

FORENSICS_LATER = "Computed nightly once the trade has closed."
TIMEFRAME_LABELS = {"1m": "1 minute", "5m": "5 minutes", "15m": "15 minutes", "1h": "1 hour", "daily": "Daily"}
INTERNAL_KEYS = ("as_of", "source", "missing")


def _number(places: int, *, unit: str = "", signed: bool = False) -> Callable:
    def text(value) -> str:
        if not isinstance(value, int | float) or isinstance(value, bool):
            return str(value)
        shown = f"{value:+,.{places}f}" if signed else f"{value:,.{places}f}"
        if unit == "$":
            return f"-${shown[1:]}" if shown.startswith("-") else f"${shown}"
        return f"{shown} {unit}".strip()
    return text


def _yes_no(value) -> str:
    return "Yes" if value is True else "No" if value is False else str(value)


def _words(mapping: dict[str, str]) -> Callable:
    return lambda value: mapping.get(value, str(value))


SIGNALS: dict[str, tuple[str, Callable]] = {
    "rsi14": ("RSI (14)", _number(1)),
    "macd_hist": ("MACD histogram", _number(4, signed=True)),
    "ema_9_21_cross": ("EMA 9 against EMA 21", _words({"above": "9 above 21", "below": "9 below 21",
                                                       "level": "Level"})),
    "ema_9_21_just_crossed": ("EMA 9/21 just crossed", _yes_no),
    "squeeze": ("In squeeze (Bollinger inside Keltner)", _yes_no),
    "squeeze_firing": ("Squeeze firing (released on this bar)", _yes_no),
    "trend": ("Trend (50 and 200-bar averages)", _words({"up": "Up", "down": "Down", "sideways": "Sideways"})),
    "sma200_distance_pct": ("Distance from the 200-bar average", _number(2, unit="%", signed=True)),
    "bars": ("Bars used", _number(0)),
}
REGIME: dict[str, tuple[str, Callable]] = {
    "spy_price": ("SPY", _number(2, unit="$")),
    "spy_change_pct": ("SPY change on the day", _number(2, unit="%", signed=True)),
    "vix": ("VIX", _number(2)),
    "vix_change_pct": ("VIX change on the day", _number(2, unit="%", signed=True)),
    "sector_etf": ("Sector ETF", _words({"unknown": "Unknown"})),
    "sector_price": ("Sector ETF price", _number(2, unit="$")),
    "sector_change_pct": ("Sector ETF change on the day", _number(2, unit="%", signed=True)),
    "sector_corr_30d": ("Correlation with the sector (30 days)", _number(2)),
}
INTERNALS: dict[str, tuple[str, Callable]] = {
    "advance_decline": ("Advance/decline (advancers ÷ decliners)", _number(2)),
    "put_call_ratio": ("Put/call ratio (volume)", _number(2)),
}
MISSING_LABELS = {
    "spy": "SPY", "vix": "VIX", "sector": "Sector ETF", "sector_etf": "Sector ETF",
    "sector_corr_30d": "Correlation with the sector", "source": "Market data", "quote": "Quote",
    **{key: label for key, (label, _) in INTERNALS.items()}, **TIMEFRAME_LABELS,
}


def _label(key: str) -> str:
    return key.replace("_", " ").strip().capitalize()


def _rows(values: dict, known: dict[str, tuple[str, Callable]]) -> list[dict]:
    """Known keys first, in their order, then anything else a scanner sent, labelled from its name."""
    keys = [key for key in known if key in values]
    keys += [key for key, value in values.items()
             if key not in known and key not in INTERNAL_KEYS and not isinstance(value, dict)]
    rows = []
    for key in keys:
        label, text = known.get(key, (_label(key), _number(4) if isinstance(values[key], float) else str))
        value = values[key]
        rows.append({"label": label, "value": value, "text": "Not available" if value is None else text(value)})
    return rows


def _missing(part: dict) -> list[dict]:
    reasons = part.get("missing") if isinstance(part.get("missing"), dict) else {}
    return [{"label": MISSING_LABELS.get(key, _label(key)), "reason": str(reason)} for key, reason in reasons.items()]


def entry_context(signals: dict, regime: dict) -> dict:
    """The signals per timeframe and the market regime (with its internals) as labelled rows, and
    what could not be had, with why."""
    signals = signals if isinstance(signals, dict) else {}
    regime = regime if isinstance(regime, dict) else {}
    timeframes = [{"timeframe": key, "label": TIMEFRAME_LABELS.get(key, _label(key)), "as_of": values.get("as_of"),
                   "rows": _rows(values, SIGNALS)}
                  for key, values in signals.items() if isinstance(values, dict) and key != "missing"]
    internals = regime.get("internals") if isinstance(regime.get("internals"), dict) else {}
    internal_rows, internal_missing = [], []
    for key, (label, text) in INTERNALS.items():
        item = internals.get(key)
        if not isinstance(item, dict):
            continue
        value = item.get("value")
        internal_rows.append({"label": label, "value": value,
                              "text": "Not available" if value is None else text(value)})
        if item.get("missing"):
            internal_missing.append({"label": label, "reason": str(item["missing"])})
    flat = {key: value for key, value in regime.items() if key != "internals"}
    return {
        "signals": timeframes,
        "signals_as_of": signals.get("as_of"),
        "signals_source": signals.get("source"),
        "regime": _rows(flat, REGIME) + internal_rows,
        "regime_as_of": regime.get("as_of"),
        "missing": _missing(signals) + _missing(regime) + internal_missing,
    }


def _minutes(later: datetime | None, start: datetime | None) -> float | None:
    return None if later is None or start is None else round((later - start).total_seconds() / 60, 1)


def forensics(row: TradeForensics | None, *, entry_at: datetime | None) -> dict:
    """The forensic targets with labels; `available` False (and why) until the nightly job ran."""
    if row is None:
        return {"available": False, "note": FORENSICS_LATER}
    return {
        "available": True,
        "note": BarFallback(row.bar_fallback).label,
        "mfe_pct": None if row.mfe_pct is None else str(row.mfe_pct),
        "mae_pct": None if row.mae_pct is None else str(row.mae_pct),
        "minutes_to_mfe": _minutes(row.mfe_at, entry_at),
        "minutes_to_mae": _minutes(row.mae_at, entry_at),
        "first_touch": row.first_touch,
        "first_touch_label": FirstTouch(row.first_touch).label,
        "minutes_to_first_touch": _minutes(row.first_touch_at, entry_at),
        "pnl_15m": None if row.pnl_15m is None else str(row.pnl_15m),
        "pnl_1h": None if row.pnl_1h is None else str(row.pnl_1h),
        "snapshot_count": row.snapshot_count,
        "bar_count": row.bar_count,
    }
