"""The market as brokers and trades see it: our market-data source and the XNYS clock.

Those layers cannot import monitoring (imports flow monitoring → trades → brokers), so this
adapter is handed to them at start-up (`MonitoringConfig.ready` → `brokers.market.use_market`).
The local paper broker fills against it; trade validation asks it about contracts and days.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cached_property

from brokers.base import BrokerUnavailable, Greeks, OptionChainEntry, Quote
from brokers.occ import build_symbol

from . import clock as market_clock
from .marketdata import Interval, MarketDataError, MarketDataProvider, OptionQuote, UnknownSymbol, provider_for
from .marketdata.base import underlying_of

CHAIN_STRIKES_EACH_SIDE = 15


def strike_step(spot: Decimal) -> Decimal:
    """Listed strike spacing near the money, by the underlying's price."""
    if spot < 25:
        return Decimal("0.5")
    if spot < 200:
        return Decimal("1")
    return Decimal("5")


def closing_price(provider: MarketDataProvider, underlying: str, expiry: date) -> Decimal | None:
    """The underlying's close at the expiry cutoff (13:00 on an early close): the last daily bar
    of that session, so a contract settles on the price the session really ended at."""
    cutoff = market_clock.expiry_cutoff(expiry)
    session = market_clock.session_for(market_clock.market_date(cutoff))
    bars = provider.bars(underlying, Interval.DAILY, session.open, cutoff + timedelta(minutes=1))
    return bars[-1].close if bars else None


def opening_price(provider: MarketDataProvider, underlying: str, at: datetime) -> Decimal | None:
    """The underlying's first price at or after `at`, the open of a session: the opening print of
    the first one-minute bar. It stands in for an AM-settled index's Special Opening Quotation,
    which no source here publishes (brokers/settlement.py)."""
    bars = provider.bars(underlying, Interval.MINUTE, at, at + timedelta(minutes=15))
    return bars[0].open if bars else None


def as_broker_quote(quote: OptionQuote) -> Quote:
    return Quote(
        symbol=quote.symbol, bid=quote.bid, ask=quote.ask, last=quote.last, volume=quote.volume,
        bid_at=quote.quote_time, ask_at=quote.quote_time,
        greeks=Greeks(delta=quote.delta, gamma=quote.gamma, theta=quote.theta, vega=quote.vega, rho=None,
                      mid_iv=quote.iv, smv_vol=None, updated_at=quote.quote_time),
        open_interest=quote.open_interest,
    )


def _chain_entry(quote: OptionQuote) -> OptionChainEntry:
    contract = quote.contract
    return OptionChainEntry(symbol=quote.symbol, underlying=underlying_of(contract), expiry=contract.expiry,
                            strike=contract.strike, option_type=contract.option_type,
                            quote=as_broker_quote(quote), open_interest=quote.open_interest)


class MarketDataMarket:
    """`brokers.market.Market` over a market-data provider (by default MARKET_DATA_SOURCE's)."""

    def __init__(self, provider: MarketDataProvider | None = None, *, clock=market_clock.now) -> None:
        self._given = provider
        self._clock = clock

    @cached_property
    def provider(self) -> MarketDataProvider:
        # Built on first use: the simulated market takes a second to lay out its price paths.
        return self._given or provider_for(clock=self._clock)

    def quotes(self, symbols: Iterable[str]) -> dict[str, Quote]:
        return {symbol: as_broker_quote(quote) for symbol, quote in self.provider.option_quotes(list(symbols)).items()}

    def option_chain(self, underlying: str, expiry: date) -> list[OptionChainEntry]:
        """The source's own listed chain where it has one (Tradier); otherwise strikes around the
        money at the usual spacing, quoted by the source (simulated, ORATS, replay)."""
        listed = getattr(self.provider, "option_chain", None)
        if listed is not None:
            return [_chain_entry(quote) for quote in listed(underlying, expiry)]
        spot = self.provider.underlying_quotes([underlying])[underlying].last
        step = strike_step(spot)
        center = (spot / step).to_integral_value() * step
        strikes = [center + step * offset for offset in range(-CHAIN_STRIKES_EACH_SIDE, CHAIN_STRIKES_EACH_SIDE + 1)]
        symbols = {
            build_symbol(underlying, expiry, kind, strike): (kind, strike)
            for strike in strikes if strike > 0 for kind in ("CALL", "PUT")
        }
        quotes = self.quotes(symbols)
        return [
            OptionChainEntry(symbol=symbol, underlying=underlying, expiry=expiry, strike=strike, option_type=kind,
                             quote=quotes[symbol])
            for symbol, (kind, strike) in symbols.items() if symbol in quotes
        ]

    def underlying_price(self, underlying: str) -> Decimal | None:
        """None for a ticker the source does not know; the source down is the broker layer's
        BrokerUnavailable (what the layers below this adapter understand)."""
        try:
            quote = self.provider.underlying_quotes([underlying]).get(underlying)
        except UnknownSymbol:
            return None
        except MarketDataError as error:
            raise BrokerUnavailable(str(error)) from error
        return quote.last if quote is not None else None

    def now(self) -> datetime:
        return self._clock()

    def is_open(self, at: datetime) -> bool:
        return market_clock.is_market_open(at)

    def is_trading_day(self, day: date) -> bool:
        return market_clock.is_trading_day(day)

    def next_open(self, at: datetime) -> datetime:
        return market_clock.next_open(at)

    def session_close(self, at: datetime) -> datetime:
        return market_clock.next_close(at)

    def expiry_cutoff(self, expiry: date) -> datetime:
        return market_clock.expiry_cutoff(expiry)

    def underlying_close(self, underlying: str, expiry: date) -> Decimal | None:
        return closing_price(self.provider, underlying, expiry)

    def underlying_opening(self, underlying: str, at: datetime) -> Decimal | None:
        return opening_price(self.provider, underlying, at)
