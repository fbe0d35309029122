"""The one interface every market-data source answers, and the typed answers it gives.

The monitor marks positions, captures entry context and settles expiries through this interface
alone, so `MARKET_DATA_SOURCE` can switch sources without code changes. Prices are `Decimal`
(4 places, as stored), greeks `Decimal` (6 places, as stored), times aware UTC. Every answer
names its `source` and the provider's own `quote_time`, so the UI can show how fresh a mark is.

Units, the same for every source: `iv` is a fraction (0.25 = 25 %), `theta` is per calendar day,
`vega` is per one volatility point (0.01), `delta` is per share and negative for puts.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import StrEnum

from brokers.occ import ROOT_UNDERLYINGS as ROOT_UNDERLYINGS  # re-exported: callers import it from here
from brokers.occ import InvalidOptionSymbol, OptionContract, parse_symbol, underlying_of_root

PRICE_PLACES = Decimal("0.0001")
GREEK_PLACES = Decimal("0.000001")


class MarketDataError(Exception):
    """Base of every market-data failure; the message is safe to show (it never holds a token)."""


class ProviderUnavailable(MarketDataError):
    """The provider could not be reached or kept failing after retries: try again later."""


class ProviderThrottled(ProviderUnavailable):
    """The shared rate budget has no slot for this request now: ask again in `retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderAuthError(MarketDataError):
    """The provider refused our credentials: retrying will not help, fix the token."""


class ProviderResponseError(MarketDataError):
    """The provider answered, but not with the data we asked for (an error body, HTML, bad JSON)."""


class UnsupportedRequest(MarketDataError):
    """This source does not offer what was asked (e.g. intraday bars from ORATS)."""


class UnknownSymbol(MarketDataError):
    """The source lists no such underlying (or no options on it)."""


class Interval(StrEnum):
    MINUTE = "1min"
    FIVE_MINUTES = "5min"
    FIFTEEN_MINUTES = "15min"
    DAILY = "daily"

    @property
    def length(self) -> timedelta:
        return {"1min": timedelta(minutes=1), "5min": timedelta(minutes=5), "15min": timedelta(minutes=15)}.get(
            self.value, timedelta(days=1)
        )


@dataclass(frozen=True)
class OptionQuote:
    contract: OptionContract
    bid: Decimal | None
    ask: Decimal | None
    mark: Decimal | None  # the mid when both sides are sane, else the provider's theoretical value
    last: Decimal | None
    volume: int | None
    open_interest: int | None
    delta: Decimal | None
    gamma: Decimal | None
    theta: Decimal | None
    vega: Decimal | None
    iv: Decimal | None
    underlying_price: Decimal | None
    quote_time: datetime
    source: str

    @property
    def symbol(self) -> str:
        return self.contract.symbol

    @property
    def mid(self) -> Decimal | None:
        return midpoint(self.bid, self.ask)


@dataclass(frozen=True)
class UnderlyingQuote:
    symbol: str
    last: Decimal
    bid: Decimal | None
    ask: Decimal | None
    quote_time: datetime
    source: str
    prev_close: Decimal | None = None  # the previous session's close, where the source gives it

    @property
    def change(self) -> Decimal | None:
        return None if self.prev_close is None else self.last - self.prev_close

    @property
    def change_pct(self) -> Decimal | None:
        if not self.prev_close:
            return None
        return (100 * (self.last - self.prev_close) / self.prev_close).quantize(Decimal("0.01"), ROUND_HALF_EVEN)


@dataclass(frozen=True)
class Bar:
    """One OHLCV bar; `quote_time` is when its close was observed (its end, or now if unfinished)."""

    symbol: str
    interval: Interval
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int | None
    quote_time: datetime
    source: str


def price(value) -> Decimal | None:
    """A provider number as a stored price: None stays None, floats go through their shortest repr."""
    return _decimal(value, PRICE_PLACES)


def greek(value) -> Decimal | None:
    return _decimal(value, GREEK_PLACES)


def _decimal(value, places: Decimal) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    return number.quantize(places, rounding=ROUND_HALF_EVEN)


def midpoint(bid: Decimal | None, ask: Decimal | None) -> Decimal | None:
    """The mid of a two-sided, uncrossed market; None when a side is missing, zero-ask or crossed."""
    if bid is None or ask is None or ask <= 0 or ask < bid:
        return None
    return ((bid + ask) / 2).quantize(PRICE_PLACES, rounding=ROUND_HALF_EVEN)


# Option roots that trade on another underlying's ticker live with the OCC symbols (brokers.occ);
# ROOT_UNDERLYINGS is re-exported (imported above) for callers that import it from this module.


def underlying_of(contract: OptionContract) -> str:
    return underlying_of_root(contract.root)


def as_contracts(contracts: Iterable[OptionContract | str]) -> dict[str, OptionContract]:
    """Accepts contracts or OCC symbols, keyed by symbol; duplicates collapse to one.

    An ASCII symbol that parses is already its contract's symbol (the pattern admits one spelling
    per contract), so it keys itself: rebuilding it costs about as much as parsing it, and a
    matching run quotes a book of 100,000. A non-ASCII one (the pattern's `\\d` matches other
    digits too) is keyed by its rebuilt, ASCII symbol, as before."""
    result = {}
    for item in contracts:
        if isinstance(item, OptionContract):
            result[item.symbol] = item
        else:
            contract = parse_symbol(item)
            result[item if item.isascii() else contract.symbol] = contract
    return result


def option_contract(symbol: str) -> OptionContract | None:
    """The contract an OCC option symbol names; None for a stock, ETF or index ticker."""
    try:
        return parse_symbol(symbol)
    except InvalidOptionSymbol:
        return None


class MarketDataProvider(ABC):
    """A source of quotes. Contracts missing at the source are left out of the answer, not faked:
    the caller compares keys to see what it did not get."""

    source: str
    # The source's data is late by design (ORATS' delayed API, Tradier's sandbox: 15 minutes).
    delayed: bool = False
    # Why `market_internals` has nothing from this source, in a trader's words.
    internals_missing: str = "This market-data source offers no advance/decline or put/call figures."

    def listed(self, ticker: str) -> bool:
        """Whether options (and the market API) are offered on `ticker`; a real source answers for
        itself (an unknown symbol is simply missing from its answer)."""
        return True

    def expirations(self, ticker: str) -> list[date]:
        """The listed expiries of `ticker`'s options, soonest first; UnknownSymbol when it has none."""
        raise UnsupportedRequest(f"{self.source} does not list expirations.")

    def market_internals(self, at: datetime) -> dict[str, float]:
        """Market internals as of `at`: `advance_decline` (advancing over declining issues) and
        `put_call_ratio` (put over call volume). No source we read offers them yet: each says why."""
        raise UnsupportedRequest(self.internals_missing)

    @abstractmethod
    def option_quotes(self, contracts: Iterable[OptionContract | str]) -> dict[str, OptionQuote]:
        """Quotes for a batch of contracts, keyed by OCC symbol."""

    @abstractmethod
    def underlying_quotes(self, symbols: Iterable[str]) -> dict[str, UnderlyingQuote]:
        """Quotes for stocks, ETFs and indices (SPY, VIX, sector ETFs), keyed by symbol."""

    @abstractmethod
    def bars(self, symbol: str, interval: Interval | str, start: datetime, end: datetime) -> list[Bar]:
        """Bars whose start lies in [start, end), oldest first. `symbol` is a stock, ETF or index
        ticker, or an OCC option symbol where the source has option bars (simulated: the mark;
        Tradier: timesales as it answers them); elsewhere an option symbol is UnsupportedRequest."""
