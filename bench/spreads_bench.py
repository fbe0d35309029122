"""How long the strategy builder's numbers take for one position (trades.spreads).

    .venv/bin/python bench/spreads_bench.py [--repeat 200]

Times, per call, what the builder asks each time a leg is clicked: the exact numbers of a
one-expiry position (an iron condor), the modelled numbers of a calendar (a grid search at the
front expiry with Black–Scholes), net greeks, and the chart (both lines over the default grid).
Not part of the test suite; results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeoptions.settings.test")

import django  # noqa: E402 - the path and settings must be set first

django.setup()

from trades.spreads import (  # noqa: E402
    CALL,
    OptionModel,
    calendar,
    iron_condor,
    net_greeks,
    payoff_curve,
    position_priced,
    price_grid,
    spread_risk,
)

NOW = datetime(2026, 12, 1, 15, tzinfo=UTC)
FRONT, BACK = date(2026, 12, 18), date(2027, 1, 15)
MODEL = OptionModel(as_of=NOW, rate=0.04)
SPOT = Decimal("501.37")
CONDOR_PRICES = {Decimal(490): "1.00", Decimal(495): "2.00", Decimal(505): "2.10", Decimal(510): "0.90"}


def timed(label: str, call, repeat: int) -> None:
    started = time.perf_counter()
    for _ in range(repeat):
        call()
    print(f"  {label:<44} {(time.perf_counter() - started) / repeat * 1000:8.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    repeat = parser.parse_args().repeat
    condor = position_priced(iron_condor(root="SPY", expiry=FRONT, long_put=490, short_put=495, short_call=505,
                                         long_call=510), lambda leg: (Decimal(CONDOR_PRICES[leg.strike]), 0.16))
    spread = calendar(root="SPY", option_type=CALL, strike=500, front_expiry=FRONT, back_expiry=BACK)
    spread = position_priced(spread, lambda leg: (Decimal("4.00") if leg.expiry == FRONT else Decimal("6.50"), 0.16))
    grid = price_grid(condor, SPOT)
    print(f"per call, mean of {repeat} (chart: {len(grid)} prices)")
    timed("iron condor: spread_risk (exact)", lambda: spread_risk(condor), repeat)
    timed("iron condor: net_greeks", lambda: net_greeks(condor, SPOT, MODEL), repeat)
    timed("iron condor: payoff_curve, expiry + today", lambda: payoff_curve(condor, grid, MODEL), repeat)
    timed("calendar: spread_risk (modelled)", lambda: spread_risk(spread, MODEL), max(repeat // 10, 1))
    timed("calendar: payoff_curve, front expiry + today",
          lambda: payoff_curve(spread, price_grid(spread, SPOT), MODEL), max(repeat // 10, 1))


if __name__ == "__main__":
    main()
