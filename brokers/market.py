"""The market as the lower layers see it: quotes, chains and the exchange clock.

The market-data layer and the exchange calendar live in `monitoring`, above `trades` and
`brokers` (imports flow monitoring → trades → brokers). Code down here that needs them (the
local paper broker's fills, trade validation) asks this small protocol instead; the monitoring
app hands over the real implementation at start-up (`MonitoringConfig.ready` → `use_market`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from .base import BrokerError, OptionChainEntry, Quote


class OutsideCalendar(ValueError):
    """A day the exchange calendar does not cover: it is built for a bounded range of years, and
    the day-based questions of `Market` (`is_trading_day`, `expiry_cutoff`) raise this outside it.
    The message names the range. Callers holding a user's date turn it into a refusal of that field."""


class Market(Protocol):
    def quotes(self, symbols: Iterable[str]) -> dict[str, Quote]:
        """Quotes for OCC option symbols; a symbol the source does not know is left out."""
        ...

    def option_chain(self, underlying: str, expiry: date) -> list[OptionChainEntry]: ...

    def underlying_price(self, underlying: str) -> Decimal | None:
        """The underlying's last price now (the strategy builder's spot), or None when the source
        has none."""
        ...

    def now(self) -> datetime: ...

    def is_open(self, at: datetime) -> bool: ...

    def is_trading_day(self, day: date) -> bool: ...

    def next_open(self, at: datetime) -> datetime:
        """The first session open strictly after `at`: when an order sent while the market is
        closed first meets the market."""
        ...

    def session_close(self, at: datetime) -> datetime:
        """The close of the session under way at `at`, or of the next one: when DAY orders expire."""
        ...

    def expiry_cutoff(self, expiry: date) -> datetime:
        """When a contract expiring on `expiry` stops trading."""
        ...

    def underlying_close(self, underlying: str, expiry: date) -> Decimal | None:
        """The underlying's price at the cutoff of contracts expiring on `expiry` (what they settle
        against), or None while the source does not have it yet."""
        ...


_market: Market | None = None


def use_market(market: Market) -> None:
    """Called once at start-up by the layer that owns market data."""
    global _market
    _market = market


def default_market() -> Market:
    if _market is None:
        raise BrokerError("No market data is available: the monitoring app did not register its market.")
    return _market
