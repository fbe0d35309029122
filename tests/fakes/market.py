"""A hand-driven market for broker tests: the test sets quotes, the clock and whether it is open;
and hand-made market data (bars) for the entry-context collector.

It implements `brokers.market.Market`; the real one (simulated, ORATS or Tradier quotes and
the XNYS calendar) is wired by the monitoring app and tested there.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from brokers.base import Greeks, Quote
from brokers.occ import parse_symbol
from monitoring.marketdata import Bar, Interval, MarketDataProvider
from monitoring.marketdata.base import OptionQuote, midpoint

OPEN_UTC = time(14, 30)  # 09:30 in New York in winter
CLOSE_UTC = time(21, 0)  # 16:00 in New York in winter; the real calendar lives in monitoring.clock


class HandDrivenMarket:
    def __init__(self, now: datetime | None = None) -> None:
        self.moment = now or datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
        self.book: dict[str, tuple[Decimal | None, Decimal | None]] = {}
        self.open = True
        self.quote_requests: list[list[str]] = []
        self.closes: dict[tuple[str, date], Decimal] = {}  # the underlying's close on an expiry day
        self.spots: dict[str, Decimal] = {}  # underlyings' last prices (set_spot)
        self.ivs: dict[str, Decimal] = {}  # options' implied volatilities (set_quote's iv)
        self.openings: dict[tuple[str, date], Decimal] = {}  # its first price after a day's open

    @classmethod
    def quoting(cls, books: dict[str, tuple[str | None, str | None]]) -> HandDrivenMarket:
        """A market whose book holds `books` (symbol → bid, ask) from the start."""
        market = cls()
        for symbol, (bid, ask) in books.items():
            market.set_quote(symbol, bid, ask)
        return market

    def set_quote(self, symbol: str, bid: str | None, ask: str | None, *, iv: str | None = None) -> None:
        self.book[symbol] = (Decimal(bid) if bid is not None else None, Decimal(ask) if ask is not None else None)
        if iv is not None:
            self.ivs[symbol] = Decimal(iv)

    def set_spot(self, underlying: str, last: str) -> None:
        self.spots[underlying] = Decimal(last)

    def underlying_price(self, underlying: str) -> Decimal | None:
        return self.spots.get(underlying)

    def advance(self, **delta) -> None:
        self.moment += timedelta(**delta)

    def quotes(self, symbols):
        symbols = list(symbols)
        self.quote_requests.append(symbols)
        return {
            symbol: Quote(symbol=symbol, bid=self.book[symbol][0], ask=self.book[symbol][1], last=None,
                          bid_at=self.moment, ask_at=self.moment, greeks=self._greeks(symbol))
            for symbol in symbols if symbol in self.book
        }

    def _greeks(self, symbol: str) -> Greeks | None:
        iv = self.ivs.get(symbol)
        if iv is None:
            return None
        return Greeks(delta=None, gamma=None, theta=None, vega=None, rho=None, mid_iv=iv, smv_vol=None,
                      updated_at=self.moment)

    def option_chain(self, underlying: str, expiry: date):
        return []

    def now(self) -> datetime:
        return self.moment

    def is_open(self, at: datetime) -> bool:
        return self.open

    def is_trading_day(self, day: date) -> bool:
        return day.weekday() < 5

    def next_open(self, at: datetime) -> datetime:
        """The next weekday's 09:30 (New York, winter) strictly after `at`."""
        day = at.date()
        while True:
            opens = datetime.combine(day, OPEN_UTC, tzinfo=UTC)
            if opens > at and day.weekday() < 5:
                return opens
            day += timedelta(days=1)

    def session_close(self, at: datetime) -> datetime:
        close = datetime.combine(at.date(), CLOSE_UTC, tzinfo=UTC)
        return close if at < close else close + timedelta(days=1)

    def expiry_cutoff(self, expiry: date) -> datetime:
        return datetime.combine(expiry, CLOSE_UTC, tzinfo=UTC)

    def set_close(self, underlying: str, expiry: date, price: str) -> None:
        self.closes[(underlying, expiry)] = Decimal(price)

    def underlying_close(self, underlying: str, expiry: date) -> Decimal | None:
        return self.closes.get((underlying, expiry))

    def set_opening(self, underlying: str, day: date, price: str) -> None:
        self.openings[(underlying, day)] = Decimal(price)

    def underlying_opening(self, underlying: str, at: datetime) -> Decimal | None:
        return self.openings.get((underlying, at.date()))


class HandMadeBars(MarketDataProvider):
    """A market-data provider (`monitoring.marketdata.MarketDataProvider`) whose bars, quotes and
    failures the test sets by hand.

    `leaky=True` makes it answer like a careless source: every bar it holds, whatever `end` was
    asked for, so a test can prove the caller drops what lies after its cut-off.
    """

    source = "hand-made"

    def __init__(self, *, leaky: bool = False) -> None:
        self.series: dict[tuple[str, str], list] = {}
        self.option_book: dict[str, object] = {}
        self.leaky = leaky
        self.failure: Exception | None = None
        self.requests: list[tuple[str, str, datetime, datetime]] = []

    def add_bars(self, symbol: str, interval, closes, *, starts, spread: str = "0.50") -> None:
        """One bar per close at each start (aware datetimes), high/low `spread` around the close."""
        interval = Interval(interval)
        width = Decimal(spread)
        bars = self.series.setdefault((symbol, interval.value), [])
        for start, close in zip(starts, closes, strict=True):
            close = Decimal(str(close))
            end = start + interval.length if interval is not Interval.DAILY else start + timedelta(hours=6, minutes=30)
            bars.append(Bar(symbol=symbol, interval=interval, start=start, open=close, high=close + width,
                            low=close - width, close=close, volume=1000, quote_time=end, source=self.source))

    def bars(self, symbol, interval, start, end):
        self.requests.append((symbol, Interval(interval).value, start, end))
        if self.failure is not None:
            raise self.failure
        held = self.series.get((symbol, Interval(interval).value), [])
        return [bar for bar in held if start <= bar.start and (self.leaky or bar.start < end)]

    def option_quotes(self, contracts):
        if self.failure is not None:
            raise self.failure
        return {symbol: self.option_book[symbol] for symbol in contracts if symbol in self.option_book}

    def underlying_quotes(self, symbols):
        return {}  # none set: the entry context reads bars, not underlying quotes


class RecordedMinuteBars:
    """A market-data source that only has the minute bars a test gives it (`add`), for the
    forensic targets' fallback. `unsupported=True` behaves like ORATS or a replay (no option
    bars at all); `failing=True` like a provider that is down. Requests are kept in `asked`."""

    source = "recorded"

    def __init__(self, *, unsupported: bool = False, failing: bool = False) -> None:
        self.unsupported, self.failing = unsupported, failing
        self.book: dict[str, list] = {}
        self.asked: list[tuple[str, datetime, datetime]] = []

    def add(self, symbol: str, start: datetime, ohlc: tuple[str, str, str, str], minutes: int = 1) -> None:
        from monitoring.marketdata import Bar, Interval

        opened, high, low, close = (Decimal(value) for value in ohlc)
        self.book.setdefault(symbol, []).append(Bar(
            symbol=symbol, interval=Interval.MINUTE, start=start, open=opened, high=high, low=low, close=close,
            volume=None, quote_time=start + timedelta(minutes=minutes), source=self.source))

    def bars(self, symbol, interval, start, end):
        from monitoring.marketdata import ProviderUnavailable, UnsupportedRequest

        self.asked.append((symbol, start, end))
        if self.unsupported:
            raise UnsupportedRequest("This source offers no bars of option contracts.")
        if self.failing:
            raise ProviderUnavailable("The provider did not answer.")
        return sorted((bar for bar in self.book.get(symbol, []) if start <= bar.start < end), key=lambda b: b.start)


class HandOptionQuotes(MarketDataProvider):
    """A data source quoting what the test sets (bid, ask; the mark is the mid, as a live source's),
    counting its requests: the one external call a cycle makes."""

    source = "hand"

    def __init__(self, book: dict[str, tuple[str, str]] | None = None, *,
                 at: datetime = datetime(2026, 12, 1, 17, tzinfo=UTC)) -> None:
        self.book = dict(book or {})
        self.at = at
        self.calls: list[list[str]] = []

    def set(self, symbol: str, bid: str, ask: str) -> None:
        self.book[symbol] = (bid, ask)

    def option_quotes(self, contracts):
        contracts = list(contracts)
        self.calls.append(contracts)
        return {symbol: self._quote(symbol) for symbol in contracts if symbol in self.book}

    def _quote(self, symbol: str) -> OptionQuote:
        bid, ask = (Decimal(side) for side in self.book[symbol])
        return OptionQuote(contract=parse_symbol(symbol), bid=bid, ask=ask, mark=midpoint(bid, ask), last=None,
                           volume=None, open_interest=None, delta=Decimal("0.5"), gamma=Decimal("0.01"),
                           theta=Decimal("-0.05"), vega=Decimal("0.2"), iv=Decimal("0.25"),
                           underlying_price=Decimal("570"), quote_time=self.at, source=self.source)

    def underlying_quotes(self, symbols):
        return {}

    def bars(self, symbol, interval, start, end):
        return []
