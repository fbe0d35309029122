"""A deterministic simulated market: the default source, needing no account.

Same seed and same instant give the same quote in every process (web and workers agree), with
no shared state: every random number comes from `random.Random(<text seed>)`, whose stream
Python guarantees across versions and which, unlike `hash()`, ignores PYTHONHASHSEED.

* Underlyings follow a geometric Brownian motion with a common market factor. Each session has
  an overnight gap and an intraday move; inside the session the path is a Brownian bridge on a
  one-minute grid, linearly interpolated between minutes. Outside sessions the price stands still.
  Paths start at the first session of the calendar and are scaled so that a ticker trades at
  its table price on REFERENCE_DAY. Tickers not in the table get a start price and volatility
  derived from SHA-256 of the ticker.
* VIX mean-reverts (in logs) around 18 and moves against the market factor.
* Options: Black–Scholes off an IV surface whose level follows VIX (strongly at the short end,
  weakly at the long end: term structure), with put skew for equities and call skew for VIX.
  Spreads widen for cheap and far-out-of-the-money contracts and sit on the tick grid.

Quotes are as of the injected clock's time; when the market is closed they are as of the last
close, and `quote_time` says so.

`option_quotes` prices a whole book at once with numpy (a monitor cycle or a matching run asks for
thousands of contracts); `_option_quote`, one contract at a time, stays the reference that option
bars use, and the batch gives the identical quote, Decimal for Decimal (see `_quote_book`).
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from statistics import NormalDist

import numpy as np

from brokers.blackscholes import black_scholes_many, each, larger, smaller
from brokers.occ import OptionContract
from monitoring import clock as market_clock

from .base import (
    Bar,
    Interval,
    MarketDataProvider,
    OptionQuote,
    UnderlyingQuote,
    UnknownSymbol,
    as_contracts,
    greek,
    midpoint,
    option_contract,
    price,
    underlying_of,
)
from .exact_decimals import floor_ceiling_or_half_even, quantized
from .listing import simulated_expirations
from .pricing import black_scholes

SOURCE = "simulated"
REFERENCE_DAY = date(2026, 1, 2)
RATE = 0.04
TRADING_DAYS = 252
OVERNIGHT_SHARE = 0.2  # of a day's variance
MARKET_CORRELATION = 0.6
VIX = "VIX"
VIX_MEAN, VIX_REVERSION, VIX_DAILY_VOL, VIX_MARKET_LOADING = 18.0, 0.06, 0.075, -0.75
YEAR_SECONDS = 365.0 * 24 * 3600
CENT, NICKEL = Decimal("0.01"), Decimal("0.05")
PENNY_EVERYWHERE = frozenset({"SPY", "QQQ", "IWM"})  # quoted in pennies at every price

# Start prices on REFERENCE_DAY and annual volatilities of common tickers.
PROFILES = {
    "SPY": (590.0, 0.16), "SPX": (5900.0, 0.16), "QQQ": (515.0, 0.20), "NDX": (21000.0, 0.20),
    "IWM": (225.0, 0.22), "RUT": (2250.0, 0.22), "DIA": (430.0, 0.14),
    "AAPL": (245.0, 0.26), "MSFT": (420.0, 0.24), "NVDA": (140.0, 0.48), "AMZN": (220.0, 0.32),
    "GOOGL": (190.0, 0.30), "META": (600.0, 0.36), "TSLA": (400.0, 0.58), "AMD": (125.0, 0.48),
    "NFLX": (900.0, 0.36), "JPM": (240.0, 0.22), "BAC": (44.0, 0.25), "XOM": (108.0, 0.24),
    "F": (10.0, 0.35), "BRKB": (455.0, 0.17), "GLD": (245.0, 0.15), "TLT": (87.0, 0.16),
    "XLF": (48.0, 0.18), "XLK": (235.0, 0.22), "XLE": (86.0, 0.24), "XLV": (138.0, 0.15),
    "XLY": (225.0, 0.22), "XLP": (79.0, 0.13), "XLI": (132.0, 0.18), "XLU": (78.0, 0.17),
    "XLB": (86.0, 0.19), "XLRE": (41.0, 0.20), "XLC": (97.0, 0.21),
}
SECTOR_ETFS = ("XLB", "XLC", "XLE", "XLF", "XLI", "XLK", "XLP", "XLRE", "XLU", "XLV", "XLY")
_NORMAL = NormalDist()


def _uniform(*parts) -> float:
    return _uniform_text("|".join(map(str, parts)))


def _uniform_text(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def _normals(stream: random.Random, count: int) -> list[float]:
    return [_NORMAL.inv_cdf(min(max(stream.random(), 1e-12), 1 - 1e-12)) for _ in range(count)]


@lru_cache(maxsize=65536)
def profile(symbol: str) -> tuple[float, float]:
    """(price on REFERENCE_DAY, annual volatility): from the table, else stable from the name.
    Cached: every quote asks, and an unlisted name costs two SHA-256 digests."""
    if symbol in PROFILES:
        return PROFILES[symbol]
    start = math.exp(math.log(10) + _uniform("start", symbol) * (math.log(500) - math.log(10)))
    return round(start, 2), 0.22 + 0.38 * _uniform("vol", symbol)


class _DailyPaths:
    """Log open and close of every session, per (seed, symbol), built lazily and kept per process."""

    def __init__(self, seed: str):
        self.seed = seed
        self.lock = threading.Lock()
        self.market: list[tuple[float, float]] = []  # the market factor's (overnight, intraday) normals
        self.market_stream = random.Random(f"{seed}|market")
        self.paths: dict[str, tuple[list[float], list[float], random.Random]] = {}

    def _market_to(self, index: int) -> None:
        while len(self.market) <= index:
            first, second = _normals(self.market_stream, 2)
            self.market.append((first, second))

    def opens_closes(self, symbol: str, index: int) -> tuple[list[float], list[float]]:
        """Raw (unanchored) log opens and closes up to session `index` included."""
        with self.lock:
            self._market_to(index)
            opens, closes, stream = self.paths.setdefault(symbol, ([], [], random.Random(f"{self.seed}|{symbol}")))
            while len(closes) <= index:
                position = len(closes)
                own_gap, own_day = _normals(stream, 2)
                market_gap, market_day = self.market[position]
                previous = closes[-1] if closes else (math.log(VIX_MEAN) if symbol == VIX else 0.0)
                if symbol == VIX:
                    gap, day = self._vix_step(previous, market_gap, market_day, own_gap, own_day)
                else:
                    gap, day = self._stock_step(symbol, market_gap, market_day, own_gap, own_day)
                opens.append(previous + gap)
                closes.append(previous + gap + day)
            return opens, closes

    @staticmethod
    def _stock_step(symbol, market_gap, market_day, own_gap, own_day) -> tuple[float, float]:
        daily = profile(symbol)[1] / math.sqrt(TRADING_DAYS)
        rho = 1.0 if symbol in ("SPY", "SPX") else MARKET_CORRELATION
        idio = math.sqrt(1 - rho * rho)
        gap_sd, day_sd = daily * math.sqrt(OVERNIGHT_SHARE), daily * math.sqrt(1 - OVERNIGHT_SHARE)
        gap = gap_sd * (rho * market_gap + idio * own_gap) - 0.5 * gap_sd**2
        day = day_sd * (rho * market_day + idio * own_day) - 0.5 * day_sd**2
        return gap, day

    @staticmethod
    def _vix_step(previous, market_gap, market_day, own_gap, own_day) -> tuple[float, float]:
        pull = VIX_REVERSION * (math.log(VIX_MEAN) - previous)
        idio = math.sqrt(1 - VIX_MARKET_LOADING**2)
        gap_sd, day_sd = VIX_DAILY_VOL * math.sqrt(0.3), VIX_DAILY_VOL * math.sqrt(0.7)
        gap = 0.3 * pull + gap_sd * (VIX_MARKET_LOADING * market_gap + idio * own_gap)
        day = 0.7 * pull + day_sd * (VIX_MARKET_LOADING * market_day + idio * own_day)
        return gap, day


_paths_by_seed: dict[str, _DailyPaths] = {}
_paths_lock = threading.Lock()


def _paths(seed: str) -> _DailyPaths:
    with _paths_lock:
        return _paths_by_seed.setdefault(seed, _DailyPaths(seed))


class Market:
    """The simulated prices of one seed, as floats; the provider turns them into quotes."""

    def __init__(self, seed: str):
        self.seed = str(seed)
        self.daily = _paths(self.seed)

    def _anchored(self, symbol: str, index: int) -> tuple[float, float, float]:
        """(log open, log close, log shift) of session `index`, shifted onto the table price."""
        reference = market_clock.sessions_before(REFERENCE_DAY)
        opens, closes = self.daily.opens_closes(symbol, max(index, reference))
        shift = 0.0 if symbol == VIX else math.log(profile(symbol)[0]) - closes[reference]
        return opens[index] + shift, closes[index] + shift, shift

    def minutes(self, symbol: str, day: date) -> tuple[float, ...]:
        """Log prices on the session's one-minute grid, open to close."""
        return _minute_path(self.seed, symbol, day, *self._anchored(symbol, market_clock.sessions_before(day))[:2])

    def observed_at(self, at: datetime) -> datetime:
        """The last instant the market traded at or before `at`: `at` in a session, else the last close."""
        day = market_clock.market_date(at)
        session = market_clock.session_for(day)
        if session.is_trading_day and session.open <= at:
            return min(at.astimezone(UTC), session.close)
        return market_clock.session_for(market_clock.previous_trading_day(day)).close

    def log_price(self, symbol: str, at: datetime) -> float:
        at = self.observed_at(at)
        session = market_clock.session_for(market_clock.market_date(at))
        grid = self.minutes(symbol, session.day)
        position = (at - session.open).total_seconds() / 60
        whole = min(int(position), len(grid) - 2)
        fraction = position - whole
        return grid[whole] + (grid[whole + 1] - grid[whole]) * fraction

    def spot(self, symbol: str, at: datetime) -> float:
        return math.exp(self.log_price(symbol, at))

    def implied_vol(self, symbol: str, strike: float, years: float, spot: float, vix: float) -> float:
        """The IV surface: VIX sets the short end, the long end stays near the ticker's own level."""
        base = 0.85 if symbol == VIX else profile(symbol)[1] * 1.1
        level = min(max(vix / VIX_MEAN, 0.6), 3.0) ** 0.9
        weight = math.exp(-years / 0.25)
        atm = base * (1.05 * (1 - weight) + level * weight)
        scale = atm * math.sqrt(max(years, 1 / 365))
        moneyness = min(max(math.log(strike / (spot * math.exp(RATE * years))) / scale, -4.0), 4.0)
        skew = 0.15 if symbol == VIX else -0.12
        return max(atm * (1 + skew * moneyness + 0.025 * moneyness * moneyness), 0.3 * atm)

    def implied_vols(self, is_vix: np.ndarray, base: np.ndarray, strike: np.ndarray, years: np.ndarray,
                     spot: np.ndarray, vix: float) -> np.ndarray:
        """`implied_vol` for arrays (`base` is each ticker's profile volatility), the same float
        operations in the same order, so each element is bit-identical to the scalar one."""
        base = np.where(is_vix, 0.85, base * 1.1)
        level = min(max(vix / VIX_MEAN, 0.6), 3.0) ** 0.9
        weight = each(math.exp, -years / 0.25)
        atm = base * (1.05 * (1 - weight) + level * weight)
        scale = atm * np.sqrt(larger(years, 1 / 365))
        moneyness = smaller(larger(each(math.log, strike / (spot * each(math.exp, RATE * years))) / scale, -4.0), 4.0)
        skew = np.where(is_vix, 0.15, -0.12)
        return larger(atm * (1 + skew * moneyness + 0.025 * moneyness * moneyness), 0.3 * atm)


@lru_cache(maxsize=4096)
def _minute_path(seed: str, symbol: str, day: date, log_open: float, log_close: float) -> tuple[float, ...]:
    session = market_clock.session_for(day)
    steps = int((session.close - session.open).total_seconds() // 60)
    daily = (VIX_DAILY_VOL if symbol == VIX else profile(symbol)[1] / math.sqrt(TRADING_DAYS))
    step_sd = daily * math.sqrt(1 - OVERNIGHT_SHARE) / math.sqrt(steps)
    walk, level = [0.0], 0.0
    for normal in _normals(random.Random(f"{seed}|{symbol}|{day.isoformat()}"), steps):
        level += step_sd * normal
        walk.append(level)
    end = walk[-1]
    return tuple(
        log_open + (log_close - log_open) * k / steps + (walk[k] - end * k / steps) for k in range(steps + 1)
    )


def option_tick(symbol: str, value: float) -> Decimal:
    """Penny-program increments: $0.01 below $3 and $0.05 from $3 up; SPY, QQQ, IWM in pennies throughout."""
    return CENT if symbol in PENNY_EVERYWHERE or value < 3 else NICKEL


def _to_tick(value: float, tick: Decimal, rounding: str) -> Decimal:
    return ((Decimal(repr(max(value, 0.0))) / tick).to_integral_value(rounding=rounding) * tick).quantize(CENT)


def spread(symbol: str, theoretical: float, delta: float) -> tuple[Decimal, Decimal]:
    """Bid and ask around the model value: wider in relative terms for cheap and far-OTM contracts,
    never narrower than two ticks, never crossed or locked, and always on the tick grid."""
    far = max(0.0, 1 - abs(delta) / 0.25)
    width = max(2 * float(option_tick(symbol, theoretical)), theoretical * (0.02 + 0.15 * far))
    if theoretical < 0.5:
        width += 0.02
    bid_raw, ask_raw = theoretical - width / 2, theoretical + width / 2
    bid = _to_tick(bid_raw, option_tick(symbol, bid_raw), ROUND_FLOOR)
    ask = _to_tick(ask_raw, option_tick(symbol, ask_raw), ROUND_CEILING)
    if ask <= bid:
        ask = bid + option_tick(symbol, float(bid))
    return bid, ask


_TICK_MODES = {ROUND_FLOOR: "floor", ROUND_CEILING: "ceiling", ROUND_HALF_EVEN: "half_even"}


def _cents_many(values: np.ndarray, penny: np.ndarray, rounding: str) -> np.ndarray:
    """`_to_tick(value, option_tick(symbol, value), rounding)` as whole cents, for arrays (`penny`:
    the ticker quotes in pennies throughout). Values too near a tick for floats to be sure take the
    scalar `_to_tick`, so every element is identical to it."""
    nickel = ~penny & ~(values < 3)
    scaled = larger(values, 0.0) / np.where(nickel, 0.05, 0.01)
    integers, unsure = floor_ceiling_or_half_even(scaled, _TICK_MODES[rounding])
    cents = integers * np.where(nickel, 5, 1)
    for index in np.flatnonzero(unsure).tolist():
        value = float(values[index])
        cents[index] = int(_to_tick(value, NICKEL if nickel[index] else CENT, rounding).scaleb(2))
    return cents


def _spreads_many(penny: np.ndarray, theoretical: np.ndarray, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`spread` for arrays, as (bid, ask) in whole cents: the same float operations in the same order."""
    far = larger(0.0, 1 - np.abs(delta) / 0.25)
    tick = np.where(penny | (theoretical < 3), 0.01, 0.05)
    width = larger(2 * tick, theoretical * (0.02 + 0.15 * far))
    width = np.where(theoretical < 0.5, width + 0.02, width)
    bid = _cents_many(theoretical - width / 2, penny, ROUND_FLOOR)
    ask = _cents_many(theoretical + width / 2, penny, ROUND_CEILING)
    locked = ask <= bid
    return bid, np.where(locked, bid + np.where(penny | (bid < 300), 1, 5), ask)


# What the simulated market lists options on: the table's tickers and VIX. It quotes any ticker
# (the monitor's context reads sector ETFs and scanners' picks alike), but lists options, and
# answers the market API, only for these.
LISTED = frozenset(PROFILES) | {VIX}


class SimulatedProvider(MarketDataProvider):
    source = SOURCE
    internals_missing = "The simulated market has no breadth data (advancing and declining issues) and no " \
                        "market-wide option volume."

    def expirations(self, ticker: str) -> list[date]:
        if ticker.upper() not in LISTED:
            raise UnknownSymbol(f"The simulated market lists no options on {ticker.upper()}.")
        return simulated_expirations(self.clock())

    def listed(self, ticker: str) -> bool:
        return ticker.upper() in LISTED

    def __init__(self, *, seed: str | int = "tradeoptions", clock: market_clock.Clock = market_clock.now):
        self.market = Market(str(seed))
        self.clock = clock

    def option_quotes(self, contracts: Iterable[OptionContract | str]) -> dict[str, OptionQuote]:
        at = self.clock()
        book = as_contracts(contracts)
        if not book:
            return {}
        return self._quote_book(book, at, self.market.spot(VIX, at))

    def _quote_book(self, book: dict[str, OptionContract], at: datetime, vix: float) -> dict[str, OptionQuote]:
        """`_option_quote` for every contract of `book`, priced as arrays: what is per expiry (the
        moment observed, the session) and per underlying (the spot) is worked out once, the IV
        surface, Black–Scholes and the spread run in numpy, and the floats become Decimals through
        `exact_decimals`. Every quote is identical to `_option_quote`'s, Decimal for Decimal
        (monitoring/tests/test_marketdata_simulated_book.py checks a wide book against it)."""
        seed = self.market.seed
        moments: dict[date, tuple[datetime, float, float, str]] = {}  # expiry: observed, years, elapsed, day
        underlyings: dict[str, tuple[str, float, bool, bool]] = {}  # root: ticker, volatility, VIX?, pennies?
        spots: dict[tuple[str, datetime], tuple[float, Decimal | None]] = {}
        rows, observed_at, underlying_prices = [], [], []
        for symbol, contract in book.items():
            moment = moments.get(contract.expiry)
            if moment is None:
                cutoff = market_clock.expiry_cutoff(contract.expiry)
                observed = self.market.observed_at(min(at, cutoff))
                session = market_clock.session_for(market_clock.market_date(observed))
                moment = moments[contract.expiry] = (
                    observed, max((cutoff - observed).total_seconds() / YEAR_SECONDS, 0.0),
                    (observed - session.open) / (session.close - session.open), str(session.day),
                )
            observed, years, elapsed, day = moment
            underlying = underlyings.get(contract.root)
            if underlying is None:
                ticker = underlying_of(contract)
                underlying = underlyings[contract.root] = (
                    ticker, profile(ticker)[1], ticker == VIX, ticker in PENNY_EVERYWHERE,
                )
            ticker, volatility, is_vix, penny = underlying
            key = (ticker, observed)
            if key not in spots:
                spot = self.market.spot(ticker, observed)
                spots[key] = (spot, price(round(spot, 2)))
            spot, underlying_price = spots[key]
            # The two draws are `_uniform(seed, "oi", symbol, day)` and `_uniform(seed, "volume", symbol, day)`.
            rows.append((
                spot, float(contract.strike), years, elapsed, volatility, contract.option_type == "CALL", is_vix, penny,
                _uniform_text(f"{seed}|oi|{symbol}|{day}"), _uniform_text(f"{seed}|volume|{symbol}|{day}"),
            ))
            observed_at.append(observed)
            underlying_prices.append(underlying_price)
        columns = np.array(rows, dtype=np.float64).T
        spot, strike, years, elapsed, base, interest_draw, volume_draw = columns[[0, 1, 2, 3, 4, 8, 9]]
        is_call, is_vix, penny = columns[5] != 0, columns[6] != 0, columns[7] != 0

        live = years > 0
        iv = np.where(live, self.market.implied_vols(is_vix, base, strike, years, spot, vix), 0.0)
        value = black_scholes_many(spot=spot, strike=strike, years=years, vol=iv, rate=RATE, is_call=is_call)
        bid, ask = _spreads_many(penny, value.price, value.delta)
        last = _cents_many(value.price, penny, ROUND_HALF_EVEN)
        interest = 10 + np.trunc(20000 * interest_draw * each(math.exp, -3 * np.abs(each(math.log, strike / spot))))
        volume = np.trunc(interest * 0.4 * volume_draw * elapsed)
        greeks = [quantized(array, 6, greek) for array in (value.delta, value.gamma, value.theta, value.vega, iv)]
        cents: dict[int, Decimal] = {}

        def in_cents(amount: int) -> Decimal:
            if amount not in cents:
                cents[amount] = Decimal(amount).scaleb(-2)
            return cents[amount]

        quotes = {}
        quoted = zip(book.items(), bid.tolist(), ask.tolist(), last.tolist(), interest.astype(np.int64).tolist(),
                     volume.astype(np.int64).tolist(), *greeks, live.tolist(), observed_at, underlying_prices,
                     strict=True)
        for (symbol, contract), bid_c, ask_c, last_c, oi, vol, delta, gamma, theta, vega, sigma, priced, observed, \
                underlying_price in quoted:
            bid_d, ask_d = in_cents(bid_c), in_cents(ask_c)
            # `midpoint(bid, ask)` in whole hundredths of a cent; it is only None for a crossed or zero ask.
            mark = Decimal(50 * (bid_c + ask_c)).scaleb(-4) if 0 < ask_c and bid_c <= ask_c else midpoint(bid_d, ask_d)
            quotes[symbol] = OptionQuote(
                contract=contract,
                bid=bid_d,
                ask=ask_d,
                mark=mark,
                last=in_cents(last_c),
                volume=vol,
                open_interest=oi,
                delta=delta,
                gamma=gamma,
                theta=theta,
                vega=vega,
                iv=sigma if priced else None,
                underlying_price=underlying_price,
                quote_time=observed,
                source=self.source,
            )
        return quotes

    def _option_quote(self, contract: OptionContract, at: datetime, spots: dict, vix: float) -> OptionQuote:
        ticker = underlying_of(contract)
        cutoff = market_clock.expiry_cutoff(contract.expiry)
        observed = self.market.observed_at(min(at, cutoff))
        key = (ticker, observed)
        if key not in spots:
            spots[key] = self.market.spot(ticker, observed)
        spot, strike = spots[key], float(contract.strike)
        years = max((cutoff - observed).total_seconds() / YEAR_SECONDS, 0.0)
        is_call = contract.option_type == "CALL"
        iv = self.market.implied_vol(ticker, strike, years, spot, vix) if years > 0 else None
        value = black_scholes(spot=spot, strike=strike, years=years, vol=iv or 0.0, rate=RATE, is_call=is_call)
        bid, ask = spread(ticker, value.price, value.delta)
        session = market_clock.session_for(market_clock.market_date(observed))
        seed, symbol, day = self.market.seed, contract.symbol, session.day
        # Open interest is set overnight; volume accumulates through the session.
        interest = 10 + int(20000 * _uniform(seed, "oi", symbol, day) * math.exp(-3 * abs(math.log(strike / spot))))
        elapsed = (observed - session.open) / (session.close - session.open)
        volume = int(interest * 0.4 * _uniform(seed, "volume", symbol, day) * elapsed)
        return OptionQuote(
            contract=contract,
            bid=bid,
            ask=ask,
            mark=midpoint(bid, ask),
            last=_to_tick(value.price, option_tick(ticker, value.price), ROUND_HALF_EVEN),
            volume=volume,
            open_interest=interest,
            delta=greek(value.delta),
            gamma=greek(value.gamma),
            theta=greek(value.theta),
            vega=greek(value.vega),
            iv=greek(iv),
            underlying_price=price(round(spot, 2)),
            quote_time=observed,
            source=self.source,
        )

    def underlying_quotes(self, symbols: Iterable[str]) -> dict[str, UnderlyingQuote]:
        at = self.clock()
        observed = self.market.observed_at(at)
        quotes = {}
        for symbol in sorted({symbol.upper() for symbol in symbols}):
            last = Decimal(repr(round(self.market.spot(symbol, observed), 2))).quantize(CENT)
            is_index = symbol in (VIX, "SPX", "NDX", "RUT")
            previous = market_clock.session_for(market_clock.previous_trading_day(market_clock.market_date(observed)))
            prev_close = Decimal(repr(round(self.market.spot(symbol, previous.close), 2))).quantize(CENT)
            quotes[symbol] = UnderlyingQuote(
                symbol=symbol, last=last, bid=None if is_index else last - CENT, ask=None if is_index else last + CENT,
                quote_time=observed, source=self.source, prev_close=prev_close,
            )
        return quotes

    def bars(self, symbol: str, interval: Interval | str, start: datetime, end: datetime) -> list[Bar]:
        """Bars starting in [start, end) and before now; the bar in progress ends at now. An OCC
        option symbol gets bars of its mark (see `_option_bars`)."""
        interval, symbol = Interval(interval), symbol.upper()
        now = self.clock().astimezone(UTC)
        end = min(end, now)
        if end <= start:
            return []
        contract = option_contract(symbol)
        if contract is not None:
            return self._option_bars(contract, interval, start, end, now)
        bars = []
        for day in market_clock.trading_days(market_clock.market_date(start), market_clock.market_date(end)):
            session = market_clock.session_for(day)
            grid = self.market.minutes(symbol, day)
            step = len(grid) - 1 if interval is Interval.DAILY else int(interval.length.total_seconds() // 60)
            for first in range(0, len(grid) - 1, step):
                bar_start = session.open + timedelta(minutes=first)
                if not start <= bar_start < end:
                    continue
                bar_end = min(bar_start + timedelta(minutes=step), session.close)
                observed = min(bar_end, now)
                last = min(first + step, int((observed - session.open).total_seconds() // 60))
                points = [math.exp(value) for value in grid[first : last + 1]]
                closing = self.market.spot(symbol, observed)
                points.append(closing)
                per_minute = 2_000_000 / math.sqrt(profile(symbol)[0])  # SPY ~80k shares a minute
                noise = 0.5 + _uniform(self.market.seed, "bar", symbol, bar_start)
                volume = int(per_minute * max(last - first, 1) * noise)
                bars.append(
                    Bar(
                        symbol=symbol, interval=interval, start=bar_start, open=_cents(points[0]),
                        high=_cents(max(points)), low=_cents(min(points)), close=_cents(closing),
                        volume=None if symbol == VIX else volume, quote_time=observed, source=self.source,
                    )
                )
        return bars


    def _option_bars(self, contract: OptionContract, interval: Interval, start: datetime, end: datetime,
                     now: datetime) -> list[Bar]:
        """Bars of the contract's mark (the quoted mid) sampled on the underlying's one-minute grid:
        open at the bar's start, close at its end (or now), high and low over the minutes between.
        Nothing after the contract stops trading. No volume: the simulated market prints no trades."""
        cutoff = market_clock.expiry_cutoff(contract.expiry)
        end = min(end, cutoff)
        spots: dict = {}
        marks: dict[datetime, Decimal] = {}

        def mark(at: datetime) -> Decimal:
            if at not in marks:
                quote = self._option_quote(contract, at, spots, self.market.spot(VIX, at))
                marks[at] = quote.mark if quote.mark is not None else quote.last
            return marks[at]

        bars = []
        for day in market_clock.trading_days(market_clock.market_date(start), market_clock.market_date(end)):
            session = market_clock.session_for(day)
            minutes = int((session.close - session.open).total_seconds() // 60)
            step = minutes if interval is Interval.DAILY else int(interval.length.total_seconds() // 60)
            for first in range(0, minutes, step):
                bar_start = session.open + timedelta(minutes=first)
                if not start <= bar_start < end:
                    continue
                observed = min(bar_start + timedelta(minutes=step), session.close, now, cutoff)
                moments = [bar_start + timedelta(minutes=k) for k in range(step)]
                values = [mark(at) for at in [*(at for at in moments if at < observed), observed]]
                bars.append(Bar(
                    symbol=contract.symbol, interval=interval, start=bar_start, open=values[0], high=max(values),
                    low=min(values), close=values[-1], volume=None, quote_time=observed, source=self.source,
                ))
        return bars


def _cents(value: float) -> Decimal:
    return Decimal(repr(round(value, 2))).quantize(CENT)
