"""A hand-driven market for broker tests: the test sets quotes, the clock and whether it is open.

It implements `brokers.market.Market`; the real one (simulated, ORATS or Tradier quotes and
the XNYS calendar) is wired by the monitoring app and tested there.
"""

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from brokers.base import Quote

CLOSE_UTC = time(21, 0)  # 16:00 in New York in winter; the real calendar lives in monitoring.clock


class HandDrivenMarket:
    def __init__(self, now: datetime | None = None) -> None:
        self.moment = now or datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
        self.book: dict[str, tuple[Decimal | None, Decimal | None]] = {}
        self.open = True
        self.quote_requests: list[list[str]] = []

    def set_quote(self, symbol: str, bid: str | None, ask: str | None) -> None:
        self.book[symbol] = (Decimal(bid) if bid is not None else None, Decimal(ask) if ask is not None else None)

    def advance(self, **delta) -> None:
        self.moment += timedelta(**delta)

    def quotes(self, symbols):
        symbols = list(symbols)
        self.quote_requests.append(symbols)
        return {
            symbol: Quote(symbol=symbol, bid=self.book[symbol][0], ask=self.book[symbol][1], last=None,
                          bid_at=self.moment, ask_at=self.moment)
            for symbol in symbols if symbol in self.book
        }

    def option_chain(self, underlying: str, expiry: date):
        return []

    def now(self) -> datetime:
        return self.moment

    def is_open(self, at: datetime) -> bool:
        return self.open

    def is_trading_day(self, day: date) -> bool:
        return day.weekday() < 5

    def session_close(self, at: datetime) -> datetime:
        close = datetime.combine(at.date(), CLOSE_UTC, tzinfo=UTC)
        return close if at < close else close + timedelta(days=1)

    def expiry_cutoff(self, expiry: date) -> datetime:
        return datetime.combine(expiry, CLOSE_UTC, tzinfo=UTC)
