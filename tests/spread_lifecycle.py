"""The market both spread lifecycle modules drive (tests/test_spread_lifecycle_paper.py and
tests/test_spread_lifecycle_tradier.py): one hand-driven book on the real XNYS calendar, which is at
once the `brokers.market.Market` the opening and the local paper broker read, and the market-data
provider the monitor's cycles quote from and settle against. The clock is pinned and moved by the
test (`moment`); the monitor's clock reads it too."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace

from brokers.occ import parse_symbol
from monitoring import clock as market_clock
from monitoring.market import closing_price, opening_price
from monitoring.marketdata import Interval
from monitoring.marketdata.base import OptionQuote, midpoint
from tests.fakes.market import HandDrivenMarket, HandMadeBars

EXPIRY = date(2026, 12, 18)  # a Friday; the calendar's front month
BACK = date(2027, 1, 15)
OPENING = datetime(2026, 12, 15, 15, 0, tzinfo=UTC)  # Tuesday 10:00 in New York
EXPIRY_CLOSE = datetime(2026, 12, 18, 21, 0, tzinfo=UTC)  # 16:00 in New York
NEXT_MONDAY = datetime(2026, 12, 21, 15, 0, tzinfo=UTC)


def sym(kind: str, strike: int, expiry: date = EXPIRY) -> str:
    return f"SPY{expiry:%y%m%d}{kind}{strike * 1000:08d}"


class Tape(HandMadeBars):
    """The provider side: the book's quotes (the mark is the mid) and the underlying's closes."""

    source = "hand"

    def __init__(self, market: LifecycleMarket) -> None:
        super().__init__()
        self.market = market
        self.requests: list[list[str]] = []

    def option_quotes(self, contracts):
        contracts = list(contracts)
        self.requests.append(contracts)
        return {symbol: self._quote(symbol) for symbol in contracts if symbol in self.market.book}

    def _quote(self, symbol: str) -> OptionQuote:
        bid, ask = self.market.book[symbol]
        return OptionQuote(contract=parse_symbol(symbol), bid=bid, ask=ask, mark=midpoint(bid, ask), last=None,
                           volume=None, open_interest=None, delta=None, gamma=None, theta=None, vega=None, iv=None,
                           underlying_price=self.market.spots.get("SPY"), quote_time=self.market.moment,
                           source=self.source)

    def underlying_quotes(self, symbols):
        return {symbol: SimpleNamespace(last=self.market.spots[symbol]) for symbol in symbols
                if symbol in self.market.spots}

    def close(self, symbol: str, day: date, price: str) -> None:
        self.add_bars(symbol, Interval.DAILY, [price], starts=[market_clock.session_for(day).open])


class LifecycleMarket(HandDrivenMarket):
    """The hand-driven books on the real exchange calendar, settling against the tape's closes."""

    def __init__(self, now: datetime = OPENING) -> None:
        super().__init__(now)
        self.tape = Tape(self)

    def books(self, quotes: dict[str, tuple[str, str]]) -> None:
        for symbol, (bid, ask) in quotes.items():
            self.set_quote(symbol, bid, ask)

    def delist(self, *symbols: str) -> None:
        """Expired contracts are quoted no more."""
        for symbol in symbols:
            self.book.pop(symbol, None)

    def expiry_cutoff(self, expiry):
        return market_clock.expiry_cutoff(expiry)

    def next_open(self, at):
        return market_clock.next_open(at)

    def is_open(self, at):
        return market_clock.is_market_open(at)

    def session_close(self, at):
        return market_clock.next_close(at)

    def underlying_close(self, underlying, expiry):
        return closing_price(self.tape, underlying, expiry)

    def underlying_opening(self, underlying, at):
        return opening_price(self.tape, underlying, at)


def legs_pnl(legs, units: int) -> Decimal:
    """Σ side × ratio × (exit − entry) × units × 100: the realized P&L the legs make."""
    return sum((leg.sign * leg.ratio * (leg.exit_price - leg.entry_price) * units * 100 for leg in legs), Decimal(0))
