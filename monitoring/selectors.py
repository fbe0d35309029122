"""Market data as the API shows it: quotes, listed expirations and option chains from the
configured source (MARKET_DATA_SOURCE), cached in Redis and shared by every user and process.

Each answer is kept MARKET_QUOTE_CACHE_SECONDS (expirations MARKET_EXPIRATIONS_CACHE_SECONDS) per
symbol, chain or ticker. A miss is fetched by one request only (single flight): the first asker
takes a short lock in Redis (`cache.add`), fetches, stores; the others wait for the stored answer
(or the stored failure, kept a second so that they fail with it instead of asking again). So 500
traders polling SPY cost one upstream request per interval, whatever their number of processes.

Upstream requests are background work for the shared rate budget (`provider_for(background=True)`):
a trader browsing a chain never spends the share kept for the monitor's exits and order sync; when
the budget has no slot the answer is 503 with Retry-After.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache

from brokers.occ import build_symbol
from tradeoptions.words import day_text

from . import clock as market_clock
from .market import CHAIN_STRIKES_EACH_SIDE, strike_step
from .marketdata import (
    MarketDataError,
    MarketDataProvider,
    OptionQuote,
    ProviderAuthError,
    ProviderResponseError,
    ProviderThrottled,
    ProviderUnavailable,
    UnderlyingQuote,
    UnknownSymbol,
    UnsupportedRequest,
    provider_for,
)
from .marketdata.base import option_contract
from .marketdata.listing import is_monthly

LOCK_SECONDS = 10.0  # longer than one upstream request with its retries; a dead holder frees it then
WAIT_SECONDS = 12.0
POLL_SECONDS = 0.02
FAILURE_SECONDS = 1
_NOT_LISTED = "not-listed"
_FAILURES = {
    "throttled": ProviderThrottled, "unavailable": ProviderUnavailable, "auth": ProviderAuthError,
    "response": ProviderResponseError, "unknown": UnknownSymbol, "unsupported": UnsupportedRequest,
}


@dataclass(frozen=True)
class Source:
    name: str
    delayed: bool


def market_provider() -> MarketDataProvider:
    """The configured source; its clock read at each call, so a test moving the clock moves it."""
    return provider_for(clock=lambda: market_clock.now(), background=True)


def source_of(provider: MarketDataProvider) -> Source:
    return Source(provider.source, bool(getattr(provider, "delayed", False)))


def _quote_seconds() -> int:
    return max(1, int(getattr(settings, "MARKET_QUOTE_CACHE_SECONDS", 5)))


def _expirations_seconds() -> int:
    return max(1, int(getattr(settings, "MARKET_EXPIRATIONS_CACHE_SECONDS", 300)))


# --- the single flight ----------------------------------------------------------------------------


def _failure_marker(error: MarketDataError) -> dict:
    kind = next((name for name, kind in _FAILURES.items() if type(error) is kind), "unavailable")
    return {"failed": kind, "message": str(error), "retry_after": getattr(error, "retry_after", None)}


def _raise_failure(marker: dict):
    kind = _FAILURES[marker["failed"]]
    if kind is ProviderThrottled:
        raise ProviderThrottled(marker["message"], retry_after=marker["retry_after"])
    raise kind(marker["message"])


def shared(keys: list[str], fetch: Callable[[list[str]], dict], *, ttl: int) -> dict:
    """The cached value of each key; the keys no one is fetching are fetched by `fetch` (one call for
    all of them), the others awaited. `fetch` returns a value per key it found; a key it leaves out
    is stored as not listed (`_NOT_LISTED`). A failure is stored briefly and raised to every waiter."""
    found: dict = {}
    pending = list(dict.fromkeys(keys))
    deadline = time.monotonic() + WAIT_SECONDS
    while pending:
        cached = cache.get_many(pending)
        for key, value in cached.items():
            if isinstance(value, dict) and "failed" in value:
                _raise_failure(value)
            found[key] = value
        pending = [key for key in pending if key not in cached]
        mine = [key for key in pending if cache.add(f"{key}:lock", 1, timeout=LOCK_SECONDS)]
        if mine:
            # Stored between our look and our lock (by the holder that just let go): no second fetch.
            stored = cache.get_many(mine)
            if stored:
                cache.delete_many([f"{key}:lock" for key in mine])  # and look again
                continue
            try:
                try:
                    fetched = fetch(mine)
                except MarketDataError as error:
                    cache.set_many({key: _failure_marker(error) for key in mine}, timeout=FAILURE_SECONDS)
                    raise
                values = {key: fetched.get(key, _NOT_LISTED) for key in mine}
                cache.set_many(values, timeout=ttl)
                found.update(values)
            finally:
                cache.delete_many([f"{key}:lock" for key in mine])
            pending = [key for key in pending if key not in mine]
            continue
        if time.monotonic() > deadline:
            raise ProviderUnavailable("Market data is slow to answer; try again in a moment.")
        time.sleep(POLL_SECONDS)
    return found


def _key(source: Source, *parts) -> str:
    return ":".join(["market", "v1", source.name, "delayed" if source.delayed else "rt", *map(str, parts)])


# --- quotes ---------------------------------------------------------------------------------------


def _underlying_row(quote: UnderlyingQuote, source: Source) -> dict:
    return {
        "symbol": quote.symbol, "kind": "underlying", "last": quote.last, "bid": quote.bid, "ask": quote.ask,
        "prev_close": quote.prev_close, "change": quote.change, "change_pct": quote.change_pct,
        "quote_time": quote.quote_time, "source": source.name, "delayed": source.delayed,
    }


def _option_row(quote: OptionQuote, source: Source) -> dict:
    return {
        "symbol": quote.symbol, "kind": "option", "bid": quote.bid, "ask": quote.ask, "mid": quote.mid,
        "mark": quote.mark, "last": quote.last, "volume": quote.volume, "open_interest": quote.open_interest,
        "iv": quote.iv, "delta": quote.delta, "underlying_price": quote.underlying_price,
        "quote_time": quote.quote_time, "source": source.name, "delayed": source.delayed,
    }


def _with_age(row: dict, now: datetime) -> dict:
    return {**row, "age_seconds": max(0, int((now - row["quote_time"]).total_seconds()))}


def _may_trade(provider: MarketDataProvider, contract) -> bool:
    """A contract worth asking the source about: a listed root, a strike, an expiry from today to
    the end of the market calendar (past it nothing can be priced)."""
    _, last = market_clock.calendar_bounds()
    today = market_clock.market_date(market_clock.now())
    return contract.strike > 0 and today <= contract.expiry <= last and provider.listed(contract.root)


def market_quotes(*, symbols: list[str], provider: MarketDataProvider | None = None) -> tuple[list[dict], list[str]]:
    """(quotes in the order asked, the symbols the source does not know). Tickers and OCC option
    symbols alike; each cached per symbol and shared by everyone."""
    provider = provider or market_provider()
    source = source_of(provider)
    keys = {symbol: _key(source, "quote", symbol) for symbol in symbols}

    def fetch(wanted_keys: list[str]) -> dict:
        wanted = [symbol for symbol, key in keys.items() if key in wanted_keys]
        options = [symbol for symbol in wanted if option_contract(symbol) is not None]
        tickers = [symbol for symbol in wanted if symbol not in options and provider.listed(symbol)]
        rows = {}
        if tickers:
            for symbol, quote in provider.underlying_quotes(tickers).items():
                rows[keys[symbol]] = _underlying_row(quote, source)
        listed = [symbol for symbol in options if _may_trade(provider, option_contract(symbol))]
        if listed:
            for symbol, quote in provider.option_quotes(listed).items():
                if symbol in keys:
                    rows[keys[symbol]] = _option_row(quote, source)
        return rows

    values = shared(list(keys.values()), fetch, ttl=_quote_seconds())
    now = market_clock.now()
    quotes = [_with_age(values[keys[symbol]], now) for symbol in symbols if values[keys[symbol]] != _NOT_LISTED]
    unknown = [symbol for symbol in symbols if values[keys[symbol]] == _NOT_LISTED]
    return quotes, unknown


# --- expirations ----------------------------------------------------------------------------------


def market_expirations(*, ticker: str, provider: MarketDataProvider | None = None) -> list[dict]:
    """Listed expiries with days to expiry and weekly/monthly; UnknownSymbol for a ticker without options."""
    provider = provider or market_provider()
    source = source_of(provider)
    key = _key(source, "expirations", ticker)

    def fetch(_keys):
        if not provider.listed(ticker):
            return {}
        try:
            return {key: provider.expirations(ticker)}
        except UnknownSymbol:
            return {}

    days = shared([key], fetch, ttl=_expirations_seconds())[key]
    if days == _NOT_LISTED:
        raise UnknownSymbol(f"No options are listed on {ticker}.")
    today = market_clock.market_date(market_clock.now())
    return [
        {"date": day, "dte": (day - today).days, "kind": "monthly" if is_monthly(day) else "weekly"}
        for day in days if day >= today
    ]


# --- chains ---------------------------------------------------------------------------------------


def _listed_chain(provider: MarketDataProvider, ticker: str, expiry: date) -> tuple[list[OptionQuote], Decimal | None]:
    listed = getattr(provider, "option_chain", None)
    if listed is not None:
        quotes = listed(ticker, expiry)
        spot = next((quote.underlying_price for quote in quotes if quote.underlying_price is not None), None)
        return quotes, spot
    # The simulated market lists strikes at the usual spacing around the money.
    spot = provider.underlying_quotes([ticker])[ticker].last
    step = strike_step(spot)
    center = (spot / step).to_integral_value() * step
    strikes = [center + step * offset for offset in range(-CHAIN_STRIKES_EACH_SIDE, CHAIN_STRIKES_EACH_SIDE + 1)]
    symbols = [build_symbol(ticker, expiry, kind, strike)
               for strike in strikes if strike > 0 for kind in ("CALL", "PUT")]
    return list(provider.option_quotes(symbols).values()), spot


def market_chain(*, ticker: str, expiry: date, strikes: int = CHAIN_STRIKES_EACH_SIDE,
                 provider: MarketDataProvider | None = None) -> dict:
    """The chain of one listed expiry, `strikes` strikes each side of the money, calls and puts side
    by side. The expiry must be listed (callers check it against `market_expirations`)."""
    provider = provider or market_provider()
    source = source_of(provider)
    key = _key(source, "chain", ticker, expiry.isoformat())

    def fetch(_keys):
        quotes, spot = _listed_chain(provider, ticker, expiry)
        return {key: {"spot": spot, "quotes": [_option_row(quote, source) for quote in quotes]}}

    chain = shared([key], fetch, ttl=_quote_seconds())[key]
    if chain == _NOT_LISTED:
        raise UnknownSymbol(f"No chain is listed for {ticker} on {day_text(expiry)}.")
    now = market_clock.now()
    by_strike: dict[Decimal, dict] = {}
    for row in chain["quotes"]:
        contract = option_contract(row["symbol"])
        side = "call" if contract.option_type == "CALL" else "put"
        by_strike.setdefault(contract.strike, {"strike": contract.strike, "call": None, "put": None})[side] = (
            _with_age(row, now))
    ordered = sorted(by_strike)
    spot = chain["spot"]
    if ordered and spot is not None:
        middle = min(range(len(ordered)), key=lambda index: abs(ordered[index] - spot))
        ordered = ordered[max(0, middle - strikes): middle + strikes + 1]
    return {
        "ticker": ticker, "expiry": expiry, "underlying_price": spot, "source": source.name,
        "delayed": source.delayed, "strikes": [by_strike[strike] for strike in ordered],
    }
