"""Trading metrics as vectorised pandas/numpy over one frame of closed trades. No ORM here:
selectors load the frame, these functions compute, `to_json` makes the answer JSON-safe.

Money is carried as integer **cents** (int64) from the database on, so sums are exact; it leaves
as a string of dollars with two decimals ("-12.50"), averages rounded half-up to the cent.
Ratios and statistics are floats rounded to 4 decimals. Anything undefined (no trades, no losing
trade for a profit factor, fewer than two days for a Sharpe ratio) is `None` (JSON null), never
NaN or Infinity.

The frame's columns: `pnl` (cents), `risk` (cents of planned risk on the held price, (entry − SL)
× contracts × 100 for a debit trade, (SL − entry) × units × 100 for a credit one; ≤ 0 when the stop
is not on the losing side), `max_loss` (cents the position could lose at entry, NaN: unlimited or
unknown), and whatever the grouping needs.

Basis: a frame from `analytics.selectors.trade_frame` carries both `pnl_gross` (premiums only)
and `pnl_net` (after commissions and fees, docs/pnl.md), and says which one its `pnl` is
(`frame.attrs["basis"]`, net by default). Every function that reads P&L takes `basis` ("net" or
"gross"; left out: the frame's own, so net unless the frame was built gross) and computes on that
column; a frame with only `pnl` (built by hand) is taken as it is.
"""

from __future__ import annotations

import math
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd

TRADING_DAYS_PER_YEAR = 252
CENT = Decimal("0.01")
NET, GROSS = "net", "gross"
BASES = (NET, GROSS)  # what a P&L figure is computed on; net is the default everywhere


def on_basis(frame: pd.DataFrame, basis: str | None = None) -> pd.DataFrame:
    """The frame with `pnl` on `basis` (from its `pnl_net` / `pnl_gross` column); None keeps the
    basis the frame is on (`trade_frame(basis=...)`), net for a frame that says none. R multiples
    computed on another basis are dropped, to be computed again on this one."""
    basis = basis or frame.attrs.get("basis") or NET
    if basis not in BASES:
        raise ValueError(f"Unknown basis {basis!r}: one of {', '.join(BASES)}.")
    column = f"pnl_{basis}"
    if column not in frame or frame.attrs.get("basis") == basis:
        return frame
    moved = frame.drop(columns="r", errors="ignore").assign(pnl=frame[column])
    moved.attrs["basis"] = basis
    return moved


# --- JSON-safe scalars --------------------------------------------------------------------------


def money(cents) -> str | None:
    """Integer cents as a dollar string; None for a missing value."""
    if cents is None or (isinstance(cents, float) and math.isnan(cents)):
        return None
    return str(Decimal(int(cents)).scaleb(-2).quantize(CENT))


def money_ratio(cents_total, count) -> str | None:
    """total / count, in dollars rounded half-up to the cent; None when count is 0."""
    if not count:
        return None
    return str((Decimal(int(cents_total)) / Decimal(int(count))).scaleb(-2).quantize(CENT, ROUND_HALF_UP))


def number(value, places: int = 4) -> float | None:
    """A finite float rounded to `places`, or None (NaN and ±Infinity are not JSON)."""
    if value is None:
        return None
    value = float(value)
    return round(value, places) if math.isfinite(value) else None


def money_series(cents: np.ndarray) -> list[str]:
    """Many cents at once (output only): exact, since |cents| < 2**53 and %.2f rounds correctly."""
    return [f"{value:.2f}" for value in (np.asarray(cents, dtype=np.int64) / 100).tolist()]


def iso_series(stamps: pd.Series) -> list[str]:
    """UTC instants as ISO 8601 strings to the second, with a Z (output only)."""
    text = np.datetime_as_string(stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[s]"), unit="s")
    return [f"{value}Z" for value in text.tolist()]


# --- Per-group statistics -------------------------------------------------------------------------


def with_outcomes(frame: pd.DataFrame) -> pd.DataFrame:
    """Adds `r`, the R multiple of each trade (P&L / planned risk; NaN without a positive risk).
    Done once per frame; every aggregate below reuses it."""
    if "r" in frame:
        return frame
    pnl = frame["pnl"].to_numpy(dtype=np.int64)
    risk = frame["risk"].to_numpy(dtype=np.float64)
    return frame.assign(r=np.divide(pnl, risk, out=np.full(len(pnl), np.nan), where=risk > 0))


def group_stats(frame: pd.DataFrame, key, *, basis: str | None = None) -> pd.DataFrame:
    """One row per group (sorted by key): counts and exact cent sums, everything else derives from
    them. Vectorised with factorize + bincount (one pass per statistic, no per-group Python)."""
    frame = with_outcomes(on_basis(frame, basis))
    codes, groups = pd.factorize(frame[key], sort=True, use_na_sentinel=False)
    size = len(groups)
    pnl = frame["pnl"].to_numpy(dtype=np.int64)
    r = frame["r"].to_numpy(dtype=np.float64)

    def total(values) -> np.ndarray:  # float sums of integers below 2**53 are exact
        return np.rint(np.bincount(codes, weights=values, minlength=size)).astype(np.int64)

    largest_win = np.full(size, np.iinfo(np.int64).min)
    largest_loss = np.full(size, np.iinfo(np.int64).max)
    np.maximum.at(largest_win, codes, pnl)
    np.minimum.at(largest_loss, codes, pnl)
    has_r = ~np.isnan(r)
    r_trades = np.bincount(codes, weights=has_r, minlength=size)
    r_sum = np.bincount(codes, weights=np.where(has_r, r, 0.0), minlength=size)
    return pd.DataFrame({
        "trades": np.bincount(codes, minlength=size), "wins": total(pnl > 0), "losses": total(pnl < 0),
        "net": total(pnl), "gross_profit": total(np.maximum(pnl, 0)), "gross_loss": total(np.minimum(pnl, 0)),
        "largest_win": largest_win, "largest_loss": largest_loss,
        "expectancy_r": np.divide(r_sum, r_trades, out=np.full(size, np.nan), where=r_trades > 0),
        "r_trades": r_trades.astype(np.int64),
    }, index=pd.Index(groups, name=key if isinstance(key, str) else None))


def stats_json(row) -> dict:
    """One group's row as the API's summary shape."""
    trades, wins, losses = int(row.trades), int(row.wins), int(row.losses)
    gross_profit, gross_loss = int(row.gross_profit), int(row.gross_loss)
    avg_win = Decimal(gross_profit) / wins if wins else None
    avg_loss = Decimal(gross_loss) / losses if losses else None
    return {
        "trades": trades,
        "wins": wins,
        "losses": losses,
        "breakeven": trades - wins - losses,
        "win_rate": number(wins / trades) if trades else None,
        "net_pnl": money(row.net),
        "gross_profit": money(gross_profit),
        "gross_loss": money(gross_loss),
        # No losing trade: the ratio is unbounded, reported as null (not Infinity).
        "profit_factor": number(gross_profit / -gross_loss) if gross_loss else None,
        "avg_win": money_ratio(gross_profit, wins),
        "avg_loss": money_ratio(gross_loss, losses),
        "payoff_ratio": number(avg_win / -avg_loss) if avg_win is not None and avg_loss else None,
        "expectancy": money_ratio(row.net, trades),
        "expectancy_r": number(row.expectancy_r) if row.r_trades else None,
        "largest_win": money(row.largest_win) if trades and row.largest_win > 0 else None,
        "largest_loss": money(row.largest_loss) if trades and row.largest_loss < 0 else None,
    }


def summary(frame: pd.DataFrame, *, basis: str | None = None) -> dict:
    if frame.empty:
        return stats_json(_EMPTY)
    return stats_json(next(group_stats(frame.assign(_all=0), "_all", basis=basis).itertuples()))


def costs(frame: pd.DataFrame) -> dict:
    """Both bases side by side, whatever the report's basis: gross P&L (premiums only), what
    commissions and fees took, and net P&L; gross − commissions − fees = net, to the cent."""
    def total(column: str) -> str | None:
        return money(int(frame[column].sum()) if column in frame and len(frame) else 0)

    return {"gross_pnl": total("pnl_gross"), "commission_total": total("commission"), "fees_total": total("fees"),
            "net_pnl": total("pnl_net")}


_EMPTY = pd.Series({"trades": 0, "wins": 0, "losses": 0, "net": 0, "gross_profit": 0, "gross_loss": 0,
                    "largest_win": 0, "largest_loss": 0, "expectancy_r": np.nan, "r_trades": 0})


def breakdown(frame: pd.DataFrame, key: str, *, basis: str | None = None) -> list[dict]:
    """Stats per value of `key` (empty strings are reported as "" — e.g. no strategy given)."""
    if frame.empty:
        return []
    stats = group_stats(frame.assign(**{key: frame[key].fillna("")}), key, basis=basis)
    return [{key: name, **stats_json(row)} for name, row in zip(stats.index, stats.itertuples(), strict=True)]


def max_loss_returns(frame: pd.DataFrame, key: str, *, basis: str | None = None) -> dict[str, dict]:
    """Per value of `key`: the return on the max loss, the honest return of a trade that is not
    long premium. Each trade's `max_loss` (cents) is the most it could lose at entry: a single
    option's premium, a debit spread's debit, a credit spread's width × 100 − credit (so a credit
    trade's return is P&L / max loss, never P&L / credit). `return_on_max_loss` = Σ P&L / Σ max loss
    and `avg_return_on_max_loss` the mean of each trade's P&L / max loss, both over the
    `return_trades` whose max loss is known and above 0 (an unlimited one, a short straddle's, is
    left out); `max_loss_total` in dollars."""
    if frame.empty:
        return {}
    frame = on_basis(frame, basis)
    answer = {}
    for name, group in frame.assign(**{key: frame[key].fillna("")}).groupby(key, sort=True):
        known = group[group["max_loss"].notna() & (group["max_loss"] > 0)]
        total = int(known["max_loss"].sum())
        each = known["pnl"].to_numpy(dtype=np.float64) / known["max_loss"].to_numpy(dtype=np.float64)
        answer[name] = {"return_trades": len(known), "max_loss_total": money(total) if len(known) else None,
                        "return_on_max_loss": number(int(known["pnl"].sum()) / total) if total else None,
                        "avg_return_on_max_loss": number(each.mean()) if len(each) else None}
    return answer


def score_buckets(frame: pd.DataFrame, score: str, buckets: int = 10, *, basis: str | None = None) -> list[dict]:
    """Equal-count buckets (deciles) of a score, lowest first; trades without the score are left
    out. With fewer trades than buckets, one bucket per trade. Ties are split by trade order, so
    bucket sizes never differ by more than one."""
    scored = frame[frame[score].notna()]
    count = len(scored)
    if not count:
        return []
    q = min(buckets, count)
    rank = scored[score].rank(method="first").to_numpy() - 1
    scored = scored.assign(bucket=(rank * q // count).astype("int64") + 1)
    stats = group_stats(scored, "bucket", basis=basis)
    bounds = scored.groupby("bucket")[score].agg(["min", "max"])
    return [
        {"bucket": int(bucket), "score_min": number(bounds.at[bucket, "min"]),
         "score_max": number(bounds.at[bucket, "max"]), **stats_json(row)}
        for bucket, row in zip(stats.index, stats.itertuples(), strict=True)
    ]


def monotonicity(buckets: list[dict]) -> dict:
    """Does a higher score bucket mean a better outcome? Checks win rate and expectancy in dollars
    for a non-decreasing order; `monotonic` is None with fewer than two buckets."""
    if len(buckets) < 2:
        return {"monotonic": None, "win_rate_monotonic": None, "expectancy_monotonic": None, "spearman": None}
    win_rate = np.array([b["win_rate"] for b in buckets], dtype=float)
    expectancy = np.array([float(b["expectancy"]) for b in buckets])
    win_ok = bool(np.all(np.diff(win_rate) >= 0))
    expectancy_ok = bool(np.all(np.diff(expectancy) >= 0))
    # Spearman's rho = Pearson's r of the ranks (ties averaged); no scipy needed.
    ranks = pd.Series(expectancy).rank().to_numpy()
    spearman = np.corrcoef(np.arange(len(buckets)), ranks)[0, 1] if np.ptp(expectancy) > 0 else None
    return {"monotonic": win_ok and expectancy_ok, "win_rate_monotonic": win_ok,
            "expectancy_monotonic": expectancy_ok, "spearman": number(spearman)}


# --- P&L distribution ------------------------------------------------------------------------------

NICE_STEPS = (1, 2, 2.5, 5)


def bucket_width(span_cents: int, buckets: int) -> int:
    """A round bucket width in cents (1, 2, 2.5 or 5 × a power of ten dollars, at least $1) that
    covers `span_cents` in about `buckets` buckets."""
    raw = max(span_cents / buckets, 100)
    power = 10 ** math.floor(math.log10(raw))
    return int(next(step * power for step in (*NICE_STEPS, 10) if step * power >= raw))


def pnl_histogram(frame: pd.DataFrame, buckets: int = 16, *, basis: str | None = None) -> dict:
    """How many trades closed with a P&L in each equal-width bucket [from, to), lowest first,
    with the wins among them; the widths are round dollar amounts and one bucket edge is at $0,
    so no bucket mixes wins and losses (a breakeven trade opens the [0, width) bucket)."""
    if frame.empty:
        return {"bucket_width": None, "buckets": []}
    pnl = on_basis(frame, basis)["pnl"].to_numpy(dtype=np.int64)
    low, high = int(pnl.min()), int(pnl.max())
    width = bucket_width(high - low, buckets)
    first = (low // width) * width  # floor: an edge sits on every multiple of the width, 0 among them
    index = (pnl - first) // width
    counts = np.bincount(index)
    wins = np.bincount(index, weights=pnl > 0, minlength=len(counts)).astype(np.int64)
    return {
        "bucket_width": money(width),
        "buckets": [{"from": money(first + k * width), "to": money(first + (k + 1) * width), "trades": int(count),
                     "wins": int(wins[k])} for k, count in enumerate(counts.tolist())],
    }


# --- Equity curve, drawdown, daily P&L ------------------------------------------------------------


def equity_curve(frame: pd.DataFrame, start_cents: int, *, basis: str | None = None) -> tuple[dict, dict]:
    """The realized equity curve (trades in close order) and its maximum drawdown.

    Equity starts at `start_cents` (the account balance) before the first trade. The drawdown is
    the largest fall from a running peak; `peak_at` is the close of the trade that set the peak
    (None when the peak is the starting balance), `trough_at` the close of the lowest trade,
    `recovered_at` the close of the first trade back at or above the peak (None: not yet).
    """
    ordered = on_basis(frame, basis).sort_values(["close_date", "id"], kind="stable")
    pnl = ordered["pnl"].to_numpy(dtype=np.int64)
    equity = start_cents + np.cumsum(pnl)
    curve = {
        "start": money(start_cents),
        "trade_ids": ordered["id"].astype("int64").tolist(),
        "closed_at": iso_series(ordered["close_date"]),
        "pnl": money_series(pnl),
        "equity": money_series(equity),
    }
    none = {"amount": money(0), "pct": number(0.0), "peak_at": None, "trough_at": None, "recovered_at": None}
    if not len(pnl):
        return curve, none
    path = np.concatenate([[start_cents], equity])  # position 0 is the start, i is after trade i
    peaks = np.maximum.accumulate(path)
    drawdowns = path - peaks
    trough = int(np.argmin(drawdowns))
    if drawdowns[trough] == 0:
        return curve, none
    peak_value = peaks[trough]
    peak = int(np.flatnonzero(path[: trough + 1] == peak_value)[-1])
    after = np.flatnonzero(path[trough + 1 :] >= peak_value)
    times = curve["closed_at"]
    return curve, {
        "amount": money(drawdowns[trough]),
        "pct": number(drawdowns[trough] * 100 / peak_value) if peak_value > 0 else None,
        "peak_at": times[peak - 1] if peak else None,
        "trough_at": times[trough - 1],
        "recovered_at": times[trough + after[0]] if len(after) else None,
    }


def daily_pnl(frame: pd.DataFrame, *, basis: str | None = None) -> pd.DataFrame:
    """P&L and trade count per New York close date (`day` column holds the NY date)."""
    if frame.empty:
        return pd.DataFrame({"pnl": pd.Series(dtype="int64"), "trades": pd.Series(dtype="int64")})
    grouped = on_basis(frame, basis).groupby("day")["pnl"]
    daily = pd.DataFrame({"pnl": grouped.sum(), "trades": grouped.size()})
    daily.index = [stamp.date() if hasattr(stamp, "date") else stamp for stamp in daily.index]  # one per day
    return daily


def risk_adjusted(daily: pd.DataFrame, sessions: list[date]) -> dict:
    """Sharpe and Sortino ratios of daily P&L over every trading session from the first to the
    last day with a close (sessions without a close count as 0).

    Both are computed on dollars, which is the same as on returns over a fixed capital base (the
    ratios do not depend on the scale). Risk-free rate 0. Annualised by √252: Sharpe = mean /
    sample standard deviation (ddof=1) × √252; Sortino = mean / downside deviation × √252, the
    downside deviation being √(mean of min(P&L, 0)²) over all days (target 0). None with fewer
    than two days, or when the deviation is 0 (no variation, or no losing day for Sortino).
    """
    values = daily["pnl"].reindex(sorted(set(sessions) | set(daily.index)), fill_value=0)
    x = values.to_numpy(dtype=float) / 100
    out = {"days": int(len(x)), "annualisation": f"sqrt({TRADING_DAYS_PER_YEAR})", "risk_free_rate": 0,
           "sharpe": None, "sortino": None}
    if len(x) < 2:
        return out
    mean, deviation = x.mean(), x.std(ddof=1)
    downside = math.sqrt(float(np.mean(np.minimum(x, 0) ** 2)))
    scale = math.sqrt(TRADING_DAYS_PER_YEAR)
    out["sharpe"] = number(mean / deviation * scale) if deviation > 0 else None
    out["sortino"] = number(mean / downside * scale) if downside > 0 else None
    return out


def underwater(equity: list[str], start: str) -> list[str]:
    """The drawdown after each trade of an equity curve (dollar strings, as `equity_curve` gives
    them): equity minus its running peak, the starting balance counted as the first peak. 0 at
    a new high, negative below it: the "underwater" chart under the equity curve. Back to exact
    cents first (two decimals, far below 2**53), then vectorised."""
    cents = np.rint(np.asarray(equity, dtype=float) * 100).astype(np.int64)
    peaks = np.maximum.accumulate(np.concatenate([[round(float(start) * 100)], cents]))[1:]
    return money_series(cents - peaks)
