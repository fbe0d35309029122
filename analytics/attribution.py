"""Greeks P&L attribution: where a trade's P&L came from, split into delta, gamma, theta, vega and
what those four do not explain. Pure and vectorised (no ORM): `analytics.selectors` loads the
snapshots, these functions compute, over one trade or many at once.

**Method.** Between two consecutive snapshots of a trade the option's mark moves by dV. A
second-order Taylor expansion in the stock, first-order in time and volatility, with the greeks
recorded at the *start* of the step:

    dV ≈ Δ·dS + ½·Γ·dS² + Θ·dt + ν·dσ

- dS: the underlying's move (snapshot `underlying`);
- dt: the time between the two quotes (`quote_time`, else the snapshot's slot) in **calendar
  days**, nights and weekends included: every market-data source quotes theta per calendar day
  (see `monitoring.marketdata.base`), and the simulated market prices on calendar time;
- dσ: the move of the implied volatility (a fraction), times 100, since vega is per volatility point;
- the residual of the step: dV minus the four terms.

Each term is per share; × 100 shares × the contracts held gives the position's dollars. A trade's
attribution is the sum over its steps. Terms are summed unrounded and rounded to the cent once per
trade; the residual is then the recorded change minus the four rounded terms, so the parts add up
to the change exactly.

**Error (what lands in the residual).** The higher-order terms left out (the cross terms
vanna dS·dσ and charm dS·dt, volga dσ², speed dS³, rho's carry), which shrink with the step; the
discrete sampling (a snapshot every ~40 s while the monitor runs, hours across a night, so the
overnight gap of the stock is one big step with greeks from the evening before); and the sources'
own errors (a mark is a mid rounded to the tick, greeks and IV from a model the source fitted,
an underlying price rounded to the cent). `docs/attribution.md` shows the residual measured on
simulated paths.

**Beyond the snapshots.** Two parts of a trade's P&L are not a move of the mark: the entry fill
against the first snapshot's mark and the exit fill (or, while open, the latest mark) against the
last one, that is the spread paid and the slippage (`execution`); and the steps whose starting
snapshot lacks a greek, the IV or the underlying, or whose end lacks the IV or the underlying
(`unattributed`: not guessed, only counted, with `steps_without_greeks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400.0
VOL_POINTS = 100.0  # vega is per 0.01 of IV
# A term per share in dollars × 100 shares × 100 cents = cents per contract.
CENTS_PER_SHARE_DOLLAR = 100 * 100
GREEKS = ("delta", "gamma", "theta", "vega")
PARTS = (*GREEKS, "residual")
INPUTS = ("delta", "gamma", "theta", "vega", "iv", "underlying")
METHOD = ("Second-order Taylor in the stock, first-order in time and IV, with the greeks at the start of each step "
          "between snapshots: delta × dS, ½ gamma × dS², theta × calendar days, vega × IV points; the residual is "
          "what they leave out (higher-order terms, the gaps between snapshots, the source's rounding).")
THETA_DAYS = "calendar"
NOT_FILLED = "The trade has not filled: there is no position to explain."
NOT_MARKED = "The position has no mark yet: there is no P&L to explain."
NO_SNAPSHOTS = "No price snapshots were recorded while the trade was open."
ONE_SNAPSHOT = "Only one price snapshot was recorded: there is no step to explain."
NO_GREEKS = "The snapshots carry no greeks, IV or underlying price from the market-data source."
SOME_WITHOUT_GREEKS = ("{count} of {steps} steps between snapshots lacked greeks, IV or the underlying price; "
                       "their P&L is counted as unattributed, not guessed.")


def step_terms(path: pd.DataFrame) -> pd.DataFrame:
    """The terms of every step of every trade, in cents of the position (floats, unrounded).

    `path`: one row per snapshot, sorted by `trade_id` then `at`, with columns `trade_id`, `at`
    (datetime64, UTC), `mark4` (the mark in integer ten-thousandths of a dollar), `qty` (contracts
    held), and the floats `underlying`, `iv`, `delta`, `gamma`, `theta`, `vega` (NaN when absent).
    Returns one row per step (a snapshot and the next of the same trade): `trade_id`, `change`
    (exact integer cents), the four greek terms, and `attributable` (every input was there).
    """
    same = path["trade_id"].to_numpy()[1:] == path["trade_id"].to_numpy()[:-1]
    start, end = path.iloc[:-1][same], path.iloc[1:][same]
    qty = start["qty"].to_numpy(dtype=np.float64)
    scale = qty * CENTS_PER_SHARE_DOLLAR
    move = end["underlying"].to_numpy(dtype=np.float64) - start["underlying"].to_numpy(dtype=np.float64)
    elapsed = end["at"].reset_index(drop=True) - start["at"].reset_index(drop=True)
    # A delayed source may stamp a quote before the previous one: time never runs backwards here.
    days = np.maximum(elapsed.dt.total_seconds().to_numpy(dtype=np.float64), 0.0) / SECONDS_PER_DAY
    vol = (end["iv"].to_numpy(dtype=np.float64) - start["iv"].to_numpy(dtype=np.float64)) * VOL_POINTS
    greek = {name: start[name].to_numpy(dtype=np.float64) for name in GREEKS}
    terms = pd.DataFrame({
        "trade_id": start["trade_id"].to_numpy(),
        # ten-thousandths of a dollar per share × 100 shares = cents per contract: exact.
        "change": (end["mark4"].to_numpy(dtype=np.int64) - start["mark4"].to_numpy(dtype=np.int64))
        * start["qty"].to_numpy(dtype=np.int64),
        "delta": greek["delta"] * move * scale,
        "gamma": 0.5 * greek["gamma"] * move * move * scale,
        "theta": greek["theta"] * days * scale,
        "vega": greek["vega"] * vol * scale,
    })
    inputs = np.column_stack([*(greek[name] for name in GREEKS), move, vol])
    terms["attributable"] = np.isfinite(inputs).all(axis=1) if len(terms) else np.zeros(0, dtype=bool)
    return terms


def attribute(path: pd.DataFrame) -> pd.DataFrame:
    """Per trade (indexed by `trade_id`, every trade of `path`): integer cents of `delta`, `gamma`,
    `theta`, `vega`, `residual` (the attributable change minus the four), `unattributed` (the change
    over steps lacking an input), `change` (first to last mark), and the counts `snapshots`,
    `steps`, `steps_without_greeks`."""
    ids = pd.Index(path["trade_id"].unique(), name="trade_id")
    terms = step_terms(path)
    usable = terms[terms["attributable"]]
    sums = usable.groupby("trade_id")[list(GREEKS)].sum().reindex(ids, fill_value=0.0)
    out = pd.DataFrame(np.rint(sums.to_numpy()).astype(np.int64), index=ids, columns=list(GREEKS))
    explained = usable.groupby("trade_id")["change"].sum().reindex(ids, fill_value=0).astype(np.int64)
    out["residual"] = explained - out[list(GREEKS)].sum(axis=1)
    out["change"] = terms.groupby("trade_id")["change"].sum().reindex(ids, fill_value=0).astype(np.int64)
    out["unattributed"] = out["change"] - explained
    out["snapshots"] = path.groupby("trade_id").size().reindex(ids, fill_value=0)
    out["steps"] = terms.groupby("trade_id").size().reindex(ids, fill_value=0)
    out["steps_without_greeks"] = out["steps"] - usable.groupby("trade_id").size().reindex(ids, fill_value=0)
    return out


@dataclass(frozen=True)
class Attribution:
    """One trade's attribution in dollars of the position. `available` is False (and every amount
    None) when there is nothing to attribute; `note` says why, or what was left unattributed."""

    available: bool
    note: str
    pnl: Decimal | None = None
    delta: Decimal | None = None
    gamma: Decimal | None = None
    theta: Decimal | None = None
    vega: Decimal | None = None
    residual: Decimal | None = None
    unattributed: Decimal | None = None
    execution: Decimal | None = None
    snapshots: int = 0
    steps: int = 0
    steps_without_greeks: int = 0

    def as_json(self) -> dict:
        """Amounts as strings of dollars, like every money figure of the API."""
        amounts = {name: None if (value := getattr(self, name)) is None else str(value)
                   for name in ("pnl", *PARTS, "unattributed", "execution")}
        return {"available": self.available, "note": self.note, "method": METHOD, "theta_days": THETA_DAYS,
                **amounts, "snapshots": self.snapshots, "steps": self.steps,
                "steps_without_greeks": self.steps_without_greeks}


def dollars(cents: int) -> Decimal:
    return Decimal(int(cents)).scaleb(-2).quantize(Decimal("0.01"))


def unavailable_reason(row: pd.Series | None) -> str:
    """Why a trade's row of `attribute` (None: no snapshots) explains nothing; "" when it does."""
    if row is None or row["snapshots"] == 0:
        return NO_SNAPSHOTS
    if row["steps"] == 0:
        return ONE_SNAPSHOT
    if row["steps_without_greeks"] == row["steps"]:
        return NO_GREEKS
    return ""


def trade_attribution(row: pd.Series | None, *, pnl_cents: int | None) -> Attribution:
    """One trade's `Attribution` from its row of `attribute` and its P&L in cents (realized, or
    unrealized while open; None before it filled)."""
    if pnl_cents is None:
        return Attribution(available=False, note=NOT_FILLED)
    if reason := unavailable_reason(row):
        return Attribution(available=False, note=reason, pnl=dollars(pnl_cents),
                           snapshots=0 if row is None else int(row["snapshots"]),
                           steps=0 if row is None else int(row["steps"]),
                           steps_without_greeks=0 if row is None else int(row["steps_without_greeks"]))
    missing, steps = int(row["steps_without_greeks"]), int(row["steps"])
    return Attribution(
        available=True, note=SOME_WITHOUT_GREEKS.format(count=missing, steps=steps) if missing else "",
        pnl=dollars(pnl_cents), **{name: dollars(row[name]) for name in (*PARTS, "unattributed")},
        execution=dollars(pnl_cents - int(row["change"])), snapshots=int(row["snapshots"]), steps=steps,
        steps_without_greeks=missing,
    )
