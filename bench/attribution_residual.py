"""How much of an option's P&L the greeks attribution leaves in its residual, on the simulated market.

    .venv/bin/python bench/attribution_residual.py [--every 40] [--sessions 1]

Quotes one at-the-money contract, 30 days out, of each of SPY, QQQ, AAPL, TSLA and NVDA, calls and
puts, starting on two Mondays of March 2026, every `--every` seconds of `--sessions` sessions, as
the monitor stores them (mids rounded to the tick, greeks to 6 places), and attributes each path
with `analytics.attribution`. Prints the residual per contract and as a share of the four terms.
Not part of the test suite; results are recorded in docs/attribution.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeoptions.settings.test")

import django  # noqa: E402 - the path and settings must be set first

django.setup()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analytics import attribution  # noqa: E402
from brokers.occ import OptionContract  # noqa: E402
from monitoring import clock as market_clock  # noqa: E402
from monitoring.marketdata.simulated import SimulatedProvider  # noqa: E402

TICKERS = ("SPY", "QQQ", "AAPL", "TSLA", "NVDA")


def quoted_path(ticker: str, option_type: str, days: list[date], every: timedelta) -> pd.DataFrame:
    first = market_clock.session_for(days[0])
    spot = SimulatedProvider(clock=lambda: first.open).underlying_quotes([ticker])[ticker].last
    expiry = days[0] + timedelta(days=30)
    expiry += timedelta(days=(4 - expiry.weekday()) % 7)
    contract = OptionContract(root=ticker, expiry=expiry, option_type=option_type, strike=Decimal(round(spot)))
    rows = []
    for day in days:
        session = market_clock.session_for(day)
        at = session.open + every
        while at <= session.close:
            quote = SimulatedProvider(clock=lambda at=at: at).option_quotes([contract])[contract.symbol]
            rows.append({"trade_id": 1, "at": quote.quote_time, "mark4": int(quote.mark * 10_000), "qty": 1,
                         **{name: float(getattr(quote, name)) for name in ("iv", "delta", "gamma", "theta", "vega")},
                         "underlying": float(quote.underlying_price)})
            at += every
    frame = pd.DataFrame(rows)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=40, help="seconds between snapshots")
    parser.add_argument("--sessions", type=int, default=1, help="sessions held")
    options = parser.parse_args()
    sessions = market_clock.trading_days(date(2026, 3, 2), date(2026, 3, 20))
    residuals, shares, changes = [], [], []
    for ticker in TICKERS:
        for option_type in ("CALL", "PUT"):
            for start in (0, 5):
                days = sessions[start : start + options.sessions]
                path = quoted_path(ticker, option_type, days, timedelta(seconds=options.every))
                row = attribution.attribute(path).loc[1]
                moved = sum(abs(row[name]) for name in attribution.GREEKS)
                residuals.append(abs(row["residual"]) / 100)
                shares.append(abs(row["residual"]) / max(moved, 1) * 100)
                changes.append(abs(row["change"]) / 100)
    print(f"every {options.every} s, {options.sessions} session(s), {len(residuals)} trades of one contract")
    print(f"  residual: median ${np.median(residuals):.2f}, worst ${max(residuals):.2f}")
    print(f"  residual / sum of the terms' sizes: median {np.median(shares):.2f} %, worst {max(shares):.2f} %")
    print(f"  marks' change: median ${np.median(changes):.2f}")


if __name__ == "__main__":
    main()
