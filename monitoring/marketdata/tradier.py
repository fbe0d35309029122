"""Tradier market data as a market-data source (facts: Tradier's
market-data reference, https://documentation.tradier.com/brokerage-api/markets).

The HTTP work is `brokers.tradier.TradierMarketData`, the broker client's own transport: the same
retries, quirk-tolerant parsing (a single row as a bare object, `null`/"null" for none), error
mapping, token hygiene and Redis rate-limit buckets, so a market-data token that is also a broker
token spends one budget, not two. A quote payload is read in one place, `brokers.tradier.parse_quote`
(the broker's own quotes and chains come from it too); this module only turns its answers into our
quotes and bars.

Requests. Every option quote of a cycle comes from `/markets/quotes` with `greeks=true`, many
symbols per request (a POST form once the list is too long for a URL). The underlyings of those
contracts ride in the same requests, because Tradier's option quotes carry no underlying price.
So a cycle costs ⌈(contracts + underlyings) / symbols_per_request⌉ requests: 2,000 contracts on
150 underlyings are 5 requests at the default 500 symbols a request.

Greek units. Tradier's greeks and IVs are computed by ORATS (updated about hourly). Tradier does
not state their units (UNCONFIRMED in the reference). Chosen here, from the published examples
(theta ≈ −0.089 on a $28 near-expiry put; vega ≈ 0.024 on a deep in-the-money put a week out):
`theta` is per calendar day, `vega` per one volatility point, `mid_iv`/`smv_vol` fractions —
our units exactly, so they pass through unchanged. Should Tradier's turn out to differ, the
conversion belongs in `_option_quote` alone. `iv` is `mid_iv`, or `smv_vol` (ORATS's smoothed
surface) when `mid_iv` is 0 or missing, as it is on illiquid rows.

A put sometimes arrives with a positive delta: Tradier's own chain example quotes
VXX190517P00016000 with delta 1.0, the strike's call delta (ORATS publishes one set of greeks per
strike). A put's delta cannot be positive, so such a value is turned into the put's by parity
(delta − 1); negative put deltas pass through.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import TypeVar

from brokers.base import BrokerAuthError, BrokerError, BrokerForbidden, BrokerRateLimited, BrokerUnavailable
from brokers.occ import OptionContract, parse_symbol
from brokers.tradier import MarketQuote, TradierMarketData
from monitoring import clock as market_clock

from .base import (
    Bar,
    Interval,
    MarketDataProvider,
    OptionQuote,
    ProviderAuthError,
    ProviderResponseError,
    ProviderThrottled,
    ProviderUnavailable,
    UnderlyingQuote,
    UnknownSymbol,
    as_contracts,
    greek,
    midpoint,
    price,
    underlying_of,
)

logger = logging.getLogger(__name__)

SOURCE = "tradier"
T = TypeVar("T")


def _positive(value):
    return value if value is not None and value > 0 else None


def _spot(row: MarketQuote) -> tuple | None:
    """(price, its time) for an underlying: the last trade, else the mid of a two-sided book."""
    quote = row.quote
    last = _positive(price(quote.last))
    if last is not None:
        return last, quote.traded_at or quote.quoted_at
    mid = midpoint(_positive(price(quote.bid)), _positive(price(quote.ask)))
    if mid is not None:
        return mid, quote.quoted_at
    return None


def _option_quote(row: MarketQuote, contract: OptionContract, *, spot, fetched: datetime) -> OptionQuote:
    quote, greeks = row.quote, row.quote.greeks
    bid, ask, last = price(quote.bid), price(quote.ask), price(quote.last)
    delta = greek(greeks.delta) if greeks else None
    if delta is not None and contract.option_type == "PUT" and delta > 0:
        delta -= 1  # the strike's call delta, by parity
    iv = (_positive(greeks.mid_iv) or _positive(greeks.smv_vol)) if greeks else None
    return OptionQuote(
        contract=contract,
        bid=bid,
        ask=ask,
        # Tradier publishes no theoretical value: without a sane two-sided market the last trade
        # is the only price it has for the contract.
        mark=midpoint(bid, ask) or _positive(last),
        last=last,
        volume=quote.volume,
        open_interest=row.open_interest,
        delta=delta,
        gamma=greek(greeks.gamma) if greeks else None,
        theta=greek(greeks.theta) if greeks else None,
        vega=greek(greeks.vega) if greeks else None,
        iv=greek(iv),
        underlying_price=spot,
        quote_time=quote.quoted_at or quote.traded_at or fetched,
        source=SOURCE,
    )


class TradierMarketDataProvider(MarketDataProvider):
    source = SOURCE
    internals_missing = "Tradier's market data has no advance/decline or market-wide put/call figures."

    def __init__(self, client: TradierMarketData, *, clock: market_clock.Clock = market_clock.now,
                 session_filter: str = "open", delayed: bool = False) -> None:
        self.client = client
        self.delayed = delayed  # the sandbox's market data is 15 minutes late
        self.clock = clock
        self.session_filter = session_filter  # intraday bars of the regular session, as the other sources give

    def __repr__(self) -> str:
        return f"<TradierMarketDataProvider {self.client!r}>"

    def option_quotes(self, contracts: Iterable[OptionContract | str]) -> dict[str, OptionQuote]:
        wanted = as_contracts(contracts)
        if not wanted:
            return {}
        underlyings = sorted({underlying_of(contract) for contract in wanted.values()})
        rows = _translated(lambda: self.client.quotes([*wanted, *underlyings], greeks=True))
        fetched = self.clock().astimezone(UTC)
        spots = {symbol: _spot(rows[symbol]) for symbol in underlyings if symbol in rows}
        quotes = {}
        for symbol, contract in wanted.items():
            row = rows.get(symbol)
            if row is None or row.kind not in ("option", ""):
                continue
            spot = spots.get(underlying_of(contract))
            quotes[symbol] = _option_quote(row, contract, spot=spot[0] if spot else None, fetched=fetched)
        if len(quotes) < len(wanted):
            logger.info("Tradier had no quote for %d of %d contracts", len(wanted) - len(quotes), len(wanted))
        return quotes

    def option_chain(self, underlying: str, expiry: date) -> list[OptionQuote]:
        """Every listed contract of one expiry with greeks (one `/markets/options/chains` request),
        priced against the underlying's quote (a second request). Not part of the common interface:
        only Tradier lists real chains."""
        ticker = underlying.upper()
        rows = _translated(lambda: self.client.option_chain(ticker, expiry, greeks=True))
        spot_rows = _translated(lambda: self.client.quotes([ticker], greeks=False))
        spot = _spot(spot_rows[ticker]) if ticker in spot_rows else None
        fetched = self.clock().astimezone(UTC)
        chain = []
        for row in rows:
            try:
                contract = parse_symbol(row.symbol)
            except ValueError:
                logger.info("Tradier listed %r, which is not an OCC symbol; skipped", row.symbol)
                continue
            chain.append(_option_quote(row, contract, spot=spot[0] if spot else None, fetched=fetched))
        return sorted(chain, key=lambda quote: (quote.contract.strike, quote.contract.option_type))

    def expirations(self, ticker: str) -> list[date]:
        ticker = ticker.upper()
        days = _translated(lambda: self.client.expirations(ticker))
        if not days:
            raise UnknownSymbol(f"Tradier lists no options on {ticker}.")
        today = market_clock.market_date(self.clock())
        return [day for day in days if day >= today]

    def underlying_quotes(self, symbols: Iterable[str]) -> dict[str, UnderlyingQuote]:
        """Stocks, ETFs and indices (VIX and SPX are indices on Tradier, quoted by their plain
        ticker, with a last but no bid or ask)."""
        tickers = sorted({symbol.strip().upper() for symbol in symbols if symbol and symbol.strip()})
        if not tickers:
            return {}
        rows = _translated(lambda: self.client.quotes(tickers, greeks=False))
        fetched = self.clock().astimezone(UTC)
        quotes = {}
        for ticker in tickers:
            row = rows.get(ticker)
            spot = _spot(row) if row is not None and row.kind != "option" else None
            if spot is None:
                continue
            quotes[ticker] = UnderlyingQuote(
                symbol=ticker, last=spot[0], bid=_positive(price(row.quote.bid)), ask=_positive(price(row.quote.ask)),
                quote_time=spot[1] or fetched, source=SOURCE, prev_close=_positive(price(row.prevclose)),
            )
        return quotes

    def bars(self, symbol: str, interval: Interval | str, start: datetime, end: datetime) -> list[Bar]:
        """Intraday bars from `/markets/timesales` (regular session), daily ones from
        `/markets/history`; a bar still forming is observed now."""
        interval, ticker = Interval(interval), symbol.upper()
        now = self.clock().astimezone(UTC)
        end = min(end, now)
        if end <= start:
            return []
        if interval is Interval.DAILY:
            return self._daily_bars(ticker, start, end, now)
        rows = _translated(
            lambda: self.client.timesales(ticker, interval.value, start, end, session_filter=self.session_filter)
        )
        bars = []
        for row in rows:
            values = (price(row.open), price(row.high), price(row.low), price(row.close))
            if None in values or not start <= row.start < end:
                continue
            bars.append(Bar(
                symbol=ticker, interval=interval, start=row.start, open=values[0], high=values[1], low=values[2],
                close=values[3], volume=row.volume, quote_time=min(row.start + interval.length, now), source=SOURCE,
            ))
        return bars

    def _daily_bars(self, ticker: str, start: datetime, end: datetime, now: datetime) -> list[Bar]:
        first, last = market_clock.market_date(start), market_clock.market_date(end)
        rows = _translated(lambda: self.client.history(ticker, first, last, interval="daily"))
        bars = []
        for row in rows:
            values = (price(row.open), price(row.high), price(row.low), price(row.close))
            session = market_clock.session_for(row.day)
            if None in values or not session.is_trading_day or not start <= session.open < end:
                continue
            bars.append(Bar(
                symbol=ticker, interval=Interval.DAILY, start=session.open, open=values[0], high=values[1],
                low=values[2], close=values[3], volume=row.volume, quote_time=min(session.close, now), source=SOURCE,
            ))
        return bars


def _translated(call: Callable[[], T]) -> T:
    """Broker errors as market-data errors; their messages are already token-free, and the
    broker exception is not chained, so nothing else travels with them."""
    try:
        return call()
    except (BrokerAuthError, BrokerForbidden) as error:  # a 403 is no more worth retrying than a 401
        raise ProviderAuthError(str(error)) from None
    except BrokerRateLimited as error:
        wait = f" Try again in {error.retry_after:.1f}s." if error.retry_after else ""
        raise ProviderThrottled(f"{error}{wait}", retry_after=error.retry_after) from None
    except BrokerUnavailable as error:
        raise ProviderUnavailable(str(error)) from None
    except BrokerError as error:
        raise ProviderResponseError(str(error)) from None
