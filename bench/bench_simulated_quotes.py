"""CPU to quote a book of options from the simulated market (issue 20: the matching run's quotes).

`SimulatedProvider.option_quotes` prices the book as arrays (`_quote_book`); the per-contract path
(`_option_quote` over the book, which is what `option_quotes` ran before) stays as the reference.
For each size (BENCH_CONTRACTS distinct contracts, default 2000,20000,100000, over BENCH_UNDERLYINGS
tickers, default 150,500) it quotes the book once cold (the underlyings' paths built), then
BENCH_REPEATS times (default 3) a minute apart each way, and prints CPU seconds
(time.process_time: the machine is shared, wall time is noise) of the best and the median steady
run. It asserts that both paths give equal quotes; the Decimal-for-Decimal proof is
monitoring/tests/test_marketdata_simulated_book.py.

The book: the table's tickers (SPX, NDX, RUT and VIX among them) then made-up ones, each with 13
expiries (today's 0DTE, then twelve Fridays) and 40 strikes around the spot, calls and puts, drawn
without repeats round the tickers. Run: `make bench ARGS="bench/bench_simulated_quotes.py"`.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from brokers.occ import build_symbol
from monitoring.marketdata.base import as_contracts
from monitoring.marketdata.simulated import PROFILES, VIX, SimulatedProvider

NY = ZoneInfo("America/New_York")
AT = datetime(2026, 6, 17, 11, 0, tzinfo=NY)  # a Wednesday, mid-session
EXPIRIES = (date(2026, 6, 17), *(date(2026, 6, 19) + timedelta(weeks=week) for week in range(12)))
STRIKES = 40


def _sizes(name: str, default: str) -> list[int]:
    return [int(size) for size in os.environ.get(name, default).split(",")]


def universe(count: int) -> list[str]:
    named = [*sorted(PROFILES), VIX]
    return (named + [f"BQ{index:03d}" for index in range(count)])[:count]


def chains(tickers: list[str]) -> dict[str, list[Decimal]]:
    spots = SimulatedProvider(seed="bench-quotes", clock=lambda: AT).underlying_quotes(tickers)
    result = {}
    for ticker in tickers:
        spot = float(spots[ticker].last)
        step = 0.5 if spot < 25 else 1.0 if spot < 100 else 5.0 if spot < 1000 else 25.0
        centre = round(spot / step) * step
        strikes = (centre + step * k for k in range(-STRIKES // 2, STRIKES // 2))
        result[ticker] = [Decimal(str(strike)) for strike in strikes if strike > 0]
    return result


def book(tickers: list[str], chain: dict[str, list[Decimal]], count: int) -> list[str]:
    pick = random.Random(count)
    symbols: set[str] = set()
    turn = 0
    while len(symbols) < count:
        ticker = tickers[turn % len(tickers)]
        turn += 1
        kind, strike = pick.choice(("CALL", "PUT")), pick.choice(chain[ticker])
        symbols.add(build_symbol(ticker, pick.choice(EXPIRIES), kind, strike))
    return sorted(symbols)


def cpu(function):
    start = time.process_time()
    result = function()
    return result, time.process_time() - start


def per_contract(provider: SimulatedProvider, symbols: list[str]) -> dict:
    """What `option_quotes` did before the batch: `_option_quote` contract by contract."""
    at = provider.clock()
    spots: dict = {}
    vix = provider.market.spot(VIX, at)
    return {symbol: provider._option_quote(contract, at, spots, vix)
            for symbol, contract in as_contracts(symbols).items()}


def measure(symbols: list[str], seed: str, repeats: int) -> tuple[float, list[float], list[float]]:
    """(cold CPU, per-contract CPUs, batch CPUs): one cold batch, then both paths a minute apart each run."""
    moment = [AT]
    provider = SimulatedProvider(seed=seed, clock=lambda: moment[0])
    _, cold = cpu(lambda: provider.option_quotes(symbols))
    scalar_times, batch_times = [], []
    for run in range(repeats):
        moment[0] = AT + timedelta(minutes=run + 1)
        reference, seconds = cpu(lambda: per_contract(provider, symbols))
        scalar_times.append(seconds)
        quotes, seconds = cpu(lambda: provider.option_quotes(symbols))
        batch_times.append(seconds)
        assert quotes == reference, "the batch quotes differ from the per-contract ones"
    return cold, scalar_times, batch_times


def bench_simulated_option_quotes():
    repeats = int(os.environ.get("BENCH_REPEATS", "3"))
    print(f"\nsimulated option_quotes, CPU seconds (process_time), steady runs: best / median of {repeats}; "
          f"load {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} on {os.cpu_count()} CPUs")
    print("underlyings  contracts   cold batch   per-contract best/median    batch best/median   ratio  µs/quote")
    for underlyings in _sizes("BENCH_UNDERLYINGS", "150,500"):
        tickers = universe(underlyings)
        chain = chains(tickers)
        for count in _sizes("BENCH_CONTRACTS", "2000,20000,100000"):
            symbols = book(tickers, chain, count)
            cold, scalar_times, batch_times = measure(symbols, f"bench-quotes-{underlyings}-{count}", repeats)
            scalar, batch = statistics.median(scalar_times), statistics.median(batch_times)
            print(f"{underlyings:>11}  {count:>9}  {cold:>10.3f}   {min(scalar_times):>9.3f} / {scalar:<9.3f}     "
                  f"{min(batch_times):>7.3f} / {batch:<7.3f}  {scalar / batch:>5.1f}x  {batch / count * 1e6:>7.1f}")
