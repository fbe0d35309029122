"""Stop-trigger latency at the local paper broker: how long from the quote crossing a stop to the
paper fill, and what that wait costs, over a simulated week (issue 20, "Measured").

The local paper broker fills a stop only when the monitor's matching job looks
(`monitoring.match_paper_orders`, every 20 s in monitoring/schedules.py; a run still going makes
the next beats skip, monitoring/tasks.py `_run`). So a stop's fill waits for the next run, then
for the run itself. Two parts:

* Measured on the database: the real `match_paper_orders` (with the exit-policy look the task does)
  over N open trades, each with a working OCO bracket that does not fill (a stop at a cent, a
  take-profit at $9,999), three runs per size, median wall time W and the moment q inside the run
  when it fetches its quotes. Sizes: BENCH_SIZES (default 2000,10000,20000); 100,000 when it is
  not among them is extrapolated linearly (least squares over the measured sizes), and said so.
* Simulated, from the simulated market's own paths (monitoring/marketdata/simulated.py, seed
  BENCH_SEED): BENCH_STOPS long calls and puts on its listed tickers, opened at seeded moments of
  the week of 7-11 December 2026 (sessions from the exchange calendar), each with a stop 10, 20 or
  30 % under its entry bid. The crossing instant is the first second at which the provider's bid
  is at or under the stop: the first minute found on the one-minute grid (the path is linear in
  log price between minutes, so a minute's lowest bid is at one of its ends), then the second by
  bisection inside it, each point quoted by the real provider. The fill is the first run (beats
  every I seconds at a seeded phase per stop, every ceil(W/I)*I when a run outlasts the beat)
  whose quotes, fetched at beat + q, show the bid at or under the stop; it lands at beat + W. Its
  price is that bid (PAPER_SLIPPAGE_PER_SHARE is 0 by default). A run outside the session fetches
  no quotes.

Latency = fill moment - crossing instant, in seconds of calendar time (a stop crossed in the
session's last seconds can wait for the next open: counted, and shown). Slippage = (stop - fill
price) x 100, dollars per contract; "at the touch" is the same for a fill at the crossing second
itself (the bid jumps through the stop in ticks, so that part is not latency's fault).
Run: `make bench ARGS="bench/bench_stop_latency.py"`.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import books
import pytest

from brokers.occ import build_symbol
from monitoring import clock as market_clock
from monitoring.market import MarketDataMarket
from monitoring.marketdata.simulated import PROFILES, SimulatedProvider
from monitoring.services import match_paper_orders

SIZES = [int(size) for size in os.environ.get("BENCH_SIZES", "2000,10000,20000").split(",")]
REPORTED = (2000, 100_000)
STOPS = int(os.environ.get("BENCH_STOPS", 300))
SEED = os.environ.get("BENCH_SEED", "stop-latency")
USERS = 200
UNDERLYINGS = 150
RUNS = 3
INTERVALS = (20, 5)  # the schedule's matching interval, and a shorter one for comparison
AT = datetime(2026, 12, 1, 17, 0, tzinfo=UTC)  # the measurement's quotes: a Tuesday, midday in New York
EXPIRY = date(2026, 12, 18)
WEEK = (date(2026, 12, 7), date(2026, 12, 11))
STOP_EXPIRY = date(2027, 1, 15)
STOP_PCTS = (Decimal("0.10"), Decimal("0.20"), Decimal("0.30"))
MINUTE = timedelta(minutes=1)


# --- Measured: one matching run over N bracketed trades ----------------------------------------


class TimedMarket(MarketDataMarket):
    """Notes when the run asks for its quotes (the quotes a fill is priced at are that moment's)."""

    asked_at = 0.0

    def quotes(self, symbols):
        TimedMarket.asked_at = time.perf_counter()
        return super().quotes(symbols)


def _grow_book(user_ids, provider, start: int, end: int) -> None:
    """Trades start..end-1, each with a working OCO that does not fill (looking, not filling)."""
    contracts = books.contracts_list(provider, UNDERLYINGS, [books.Variant(Decimal("1.02"), EXPIRY)])
    books.trades_open(user_ids=user_ids, contracts=contracts, start=start, end=end, at=AT)
    books.brackets_attach(at=AT)


def _matching_runs(provider) -> tuple[float, float]:
    """Median wall seconds of a run, and median seconds into it when the quotes are fetched."""
    market = TimedMarket(provider, clock=lambda: AT)
    walls, quoted = [], []
    for _ in range(RUNS):
        started = time.perf_counter()
        fills = match_paper_orders(market=market, exit_policies_provider=provider)
        walls.append(time.perf_counter() - started)
        quoted.append(TimedMarket.asked_at - started)
        assert fills == 0  # the brackets are far away: the run looks at every group, fills none
    return statistics.median(walls), statistics.median(quoted)


def _fit(points: list[tuple[int, float]], size: int) -> float:
    """Linear least squares through (trades, seconds), read at `size`."""
    if len(points) == 1:
        return points[0][1] * size / points[0][0]
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    return mean_y + slope * (size - mean_x)


# --- Simulated: crossings over a week of the simulated market ----------------------------------


class Clocked:
    """The simulated provider at a moment set by hand."""

    def __init__(self):
        self.at = AT
        self.provider = SimulatedProvider(seed=SEED, clock=lambda: self.at)

    def bids(self, symbols: list[str], at: datetime) -> dict[str, Decimal]:
        self.at = at
        return {symbol: quote.bid for symbol, quote in self.provider.option_quotes(symbols).items()}

    def bid(self, symbol: str, at: datetime) -> Decimal:
        return self.bids([symbol], at)[symbol]


@dataclass
class Stop:
    symbol: str
    opened: datetime
    stop: Decimal
    crossed: datetime | None = None
    touch_bid: Decimal | None = None


def _week_minutes() -> list[datetime]:
    minutes = []
    for day in market_clock.trading_days(*WEEK):
        session = market_clock.session_for(day)
        at = session.open
        while at <= session.close:
            minutes.append(at)
            at += MINUTE
    return minutes


def _open_stops(market: Clocked, minutes: list[datetime]) -> list[Stop]:
    """Long calls and puts a little out of the money, opened at seeded minutes of the week's first
    three-fifths, with the stop a seeded 10/20/30 % under the entry bid."""
    rng = random.Random(f"{SEED}|stops")
    tickers = sorted(PROFILES)
    stops = []
    for n in range(STOPS):
        ticker, kind = tickers[n % len(tickers)], ("CALL", "PUT")[n % 2]
        opened = minutes[rng.randrange(int(len(minutes) * 0.6))]
        market.at = opened
        spot = market.provider.underlying_quotes([ticker])[ticker].last
        step = Decimal("5") if spot > 500 else Decimal("1")
        strike = (spot * (Decimal("1.02") if kind == "CALL" else Decimal("0.98")) / step).quantize(Decimal("1")) * step
        symbol = build_symbol(ticker, STOP_EXPIRY, kind, strike)
        entry = market.bid(symbol, opened)
        stop = (entry * (1 - rng.choice(STOP_PCTS))).quantize(Decimal("0.01"))
        if stop >= Decimal("0.05"):
            stops.append(Stop(symbol=symbol, opened=opened, stop=stop))
    return stops


def _find_crossings(market: Clocked, stops: list[Stop], minutes: list[datetime]) -> None:
    """First minute on the grid whose bid is at or under the stop, then the second inside it."""
    waiting = sorted(stops, key=lambda s: s.opened)
    active: list[Stop] = []
    for at in minutes:
        while waiting and waiting[0].opened <= at:
            active.append(waiting.pop(0))
        if not active:
            continue
        bids = market.bids(sorted({s.symbol for s in active}), at)
        still = []
        for stop in active:
            if bids[stop.symbol] is not None and bids[stop.symbol] <= stop.stop and at > stop.opened:
                stop.crossed = _crossing_second(market, stop, at)
                stop.touch_bid = market.bid(stop.symbol, stop.crossed)
            else:
                still.append(stop)
        active = still


def _crossing_second(market: Clocked, stop: Stop, minute_end: datetime) -> datetime:
    """Bisect (minute_end - 60 s, minute_end] for the first second at which bid <= stop; a minute
    that starts at the open cannot reach back over the close."""
    session = market_clock.session_for(market_clock.market_date(minute_end))
    # Seconds before minute_end: crossed at `low`, not crossed at `high` (the minute's start).
    low, high = 0, min(60, int((minute_end - session.open).total_seconds()))
    while high - low > 1:
        middle = (low + high) // 2
        bid = market.bid(stop.symbol, minute_end - timedelta(seconds=middle))
        if bid is not None and bid <= stop.stop:
            low = middle
        else:
            high = middle
    return minute_end - timedelta(seconds=low)


@dataclass
class Fill:
    latency: float
    slippage: Decimal  # dollars a contract
    at_touch: Decimal
    overnight: bool
    missed_first: bool


def _fill(market: Clocked, stop: Stop, rng: random.Random, interval: int, wall: float, quoted: float,
          week_end: datetime) -> Fill | None:
    """The first run whose own quotes show the stop crossed; None if none does by the week's end."""
    period = interval * max(1, math.ceil(wall / interval))
    epoch = datetime.combine(WEEK[0], datetime.min.time(), tzinfo=UTC) + timedelta(seconds=rng.uniform(0, period))
    k = math.ceil(((stop.crossed - epoch).total_seconds() - quoted) / period)
    first = True
    while True:
        beat = epoch + timedelta(seconds=k * period)
        quote_at = beat + timedelta(seconds=quoted)
        if quote_at > week_end:
            return None
        if market_clock.is_market_open(quote_at):
            bid = market.bid(stop.symbol, quote_at)
            if bid is not None and bid <= stop.stop:
                filled = beat + timedelta(seconds=wall)
                overnight = market_clock.market_date(filled) != market_clock.market_date(stop.crossed)
                return Fill(latency=(filled - stop.crossed).total_seconds(), slippage=(stop.stop - bid) * 100,
                            at_touch=(stop.stop - stop.touch_bid) * 100, overnight=overnight, missed_first=not first)
            first = False
        else:
            k = math.ceil(((market_clock.next_open(quote_at) - epoch).total_seconds() - quoted) / period) - 1
        k += 1


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


@pytest.mark.django_db
def bench_stop_trigger_latency():
    provider = SimulatedProvider(seed="bench", clock=lambda: AT)
    users = books.users_create(USERS, prefix="bench-stop-")
    measured, built = {}, 0
    for size in sorted(SIZES):
        started = time.perf_counter()
        _grow_book(users, provider, built, size)
        built = size
        setup = time.perf_counter() - started
        measured[size] = _matching_runs(provider)
        print(f"\nmeasured: {size} trades with OCO brackets ({2 * size} working legs), set-up {setup:.0f} s, "
              f"match_paper_orders median of {RUNS}: {measured[size][0]:.2f} s wall, quotes fetched at "
              f"{measured[size][1]:.2f} s")
    runs = {}
    for size in REPORTED:
        if size in measured:
            runs[size] = (*measured[size], "measured")
        else:
            runs[size] = (_fit([(n, w) for n, (w, _) in measured.items()], size),
                          _fit([(n, q) for n, (_, q) in measured.items()], size),
                          f"extrapolated linearly from {', '.join(map(str, sorted(measured)))}")

    market = Clocked()
    minutes = _week_minutes()
    started = time.perf_counter()
    stops = _open_stops(market, minutes)
    _find_crossings(market, stops, minutes)
    crossed = [stop for stop in stops if stop.crossed is not None]
    week_end = market_clock.session_for(WEEK[1]).close
    print(f"\nsimulated week {WEEK[0]}..{WEEK[1]} ({len(minutes)} session minutes), seed {SEED!r}: "
          f"{len(stops)} stops, {len(crossed)} crossed (found in {time.perf_counter() - started:.0f} s)")
    print("latency in seconds; $ a contract: stop - fill price (x100); 'at touch': the same at the crossing "
          "second; 'by latency': the difference; 'missed': the first run's quote was back over the stop")
    print(f"{'trades':>8} {'interval':>9} {'run W s':>8} {'fills':>6} {'latency median':>15} {'p95':>7} "
          f"{'max':>8} {'max hit':>8} {'$ median':>9} {'p95':>7} {'at touch med/p95':>17} "
          f"{'by latency med/p95':>19} {'missed':>7} {'overnight':>10}")
    for size in REPORTED:
        wall, quoted, how = runs[size]
        for interval in INTERVALS:
            rng = random.Random(f"{SEED}|phase|{interval}")
            fills = [f for f in (_fill(market, stop, rng, interval, wall, quoted, week_end) for stop in crossed) if f]
            latencies = [f.latency for f in fills]
            costs = [float(f.slippage) for f in fills]
            touch = [float(f.at_touch) for f in fills]
            lost = [float(f.slippage - f.at_touch) for f in fills]
            hit = max(f.latency for f in fills if not f.missed_first)
            print(f"{size:>8} {interval:>8}s {wall:>8.2f} {len(fills):>6} {statistics.median(latencies):>15.1f} "
                  f"{_percentile(latencies, 0.95):>7.1f} {max(latencies):>8.0f} {hit:>8.1f} "
                  f"{statistics.median(costs):>9.2f} {_percentile(costs, 0.95):>7.2f} "
                  f"{statistics.median(touch):>8.2f}/{_percentile(touch, 0.95):<8.2f} "
                  f"{statistics.median(lost):>9.2f}/{_percentile(lost, 0.95):<9.2f} "
                  f"{sum(f.missed_first for f in fills):>7} {sum(f.overnight for f in fills):>10}")
        print(f"{'':>8} run time at {size}: {how}")
    assert crossed, "no stop crossed in the simulated week: the bench measured nothing"
