"""ORATS datav2 as a market-data source (facts: ORATS' datav2
API guide, https://docs.orats.io/datav2-api-guide/).

One `strikes` request per underlying covers every contract asked for on it, whatever their number:
ORATS answers one row per (expiry, strike) holding both the call and the put side. The `dte`
filter narrows that row set to the expiries asked for, and `fields` trims the columns.

ORATS publishes one set of greeks per row, computed for the call. A put's delta is taken by
parity (call delta − 1); gamma and vega are the same for both; theta is the row's, which differs
from the put's true theta only by the carry term r·K·e^(−rT)/365 (cents per contract per day).

The token travels as the `token` query parameter, which ORATS requires; so no error message or
log line here ever includes a request URL.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal
from urllib.parse import urlsplit

import requests

from brokers.base import BrokerRateLimited
from brokers.occ import OptionContract
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
    UnsupportedRequest,
    as_contracts,
    greek,
    midpoint,
    option_contract,
    price,
    underlying_of,
)

logger = logging.getLogger(__name__)

SOURCE = "orats"
STRIKE_FIELDS = (
    "ticker,tradeDate,expirDate,strike,stockPrice,spotPrice,"
    "callBidPrice,callAskPrice,callValue,callVolume,callOpenInterest,callMidIv,"
    "putBidPrice,putAskPrice,putValue,putVolume,putOpenInterest,putMidIv,"
    "smvVol,delta,gamma,theta,vega,updatedAt"
)
LIVE_EXTRA_FIELDS = ",quoteDate,callSmvVol,putSmvVol"
TICKERS_PER_SUMMARY_REQUEST = 10  # ORATS caps comma-separated ticker lists on some endpoints
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RATE_LIMIT = 1000  # requests a minute, "for the data API" (datav2, live, snapshot, one-minute)
RATE_GROUP = "market_data"
DTE_PADDING = 2  # ORATS counts dte from its own trade date, inclusively; pad rather than miss a row


def parse_time(value) -> datetime | None:
    """ORATS times are ISO-8601 with Z; the legacy form without a zone is UTC as well."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace(" ", "T"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _whole(value) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _positive(value):
    """ORATS writes 0 for "no implied volatility" (e.g. a zero bid); treat it as absent."""
    if value is None or value == "":
        return None
    try:
        return value if float(value) > 0 else None
    except ValueError:
        return None


def row_key(row: dict) -> tuple[date, Decimal] | None:
    try:
        return date.fromisoformat(str(row["expirDate"])[:10]), Decimal(str(row["strike"]))
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return None


def quote_from_row(row: dict, contract: OptionContract, *, source: str, fallback_time: datetime) -> OptionQuote:
    """One side of an ORATS strikes row as our quote; any field may be null (live-derived rows)."""
    side = "call" if contract.option_type == "CALL" else "put"
    bid, ask = price(row.get(f"{side}BidPrice")), price(row.get(f"{side}AskPrice"))
    delta = greek(row.get("delta"))
    if delta is not None and side == "put":
        delta -= 1
    iv = _positive(row.get(f"{side}MidIv")) or _positive(row.get(f"{side}SmvVol")) or _positive(row.get("smvVol"))
    return OptionQuote(
        contract=contract,
        bid=bid,
        ask=ask,
        mark=midpoint(bid, ask) or price(row.get(f"{side}Value")),
        last=None,  # the strikes rows carry no last trade
        volume=_whole(row.get(f"{side}Volume")),
        open_interest=_whole(row.get(f"{side}OpenInterest")),
        delta=delta,
        gamma=greek(row.get("gamma")),
        theta=greek(row.get("theta")),
        vega=greek(row.get("vega")),
        iv=greek(iv),
        underlying_price=price(row.get("stockPrice")) or price(row.get("spotPrice")),
        quote_time=parse_time(row.get("quoteDate")) or parse_time(row.get("updatedAt")) or fallback_time,
        source=source,
    )


class OratsClient:
    """Plain GETs against datav2 with timeouts and bounded, jittered retries for transient failures.

    Each thread gets its own `requests.Session`, because one session is not safe to share across
    the threads that fetch underlyings in parallel.
    """

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        timeout: tuple[float, float] = (3.05, 20),
        attempts: int = 3,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        session_factory: Callable[[], requests.Session] = requests.Session,
        limiter=None,
    ):
        self.base_url = base_url.rstrip("/")
        # A brokers.ratelimit.RateLimiter over ORATS' budget (RATE_LIMIT a minute per token), shared
        # by every process through Redis; None: unthrottled (the client's own tests).
        self.limiter = limiter
        self.host = urlsplit(self.base_url).netloc
        self.token = token
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.sleep = sleep
        self.session_factory = session_factory
        self._local = threading.local()
        self._count_lock = threading.Lock()
        self.requests_made = 0

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self.session_factory()
            session.headers["Accept"] = "application/json"
        return session

    def _acquire(self) -> None:
        if self.limiter is None:
            return
        try:
            self.limiter.acquire(RATE_GROUP)
        except BrokerRateLimited as error:
            raise ProviderThrottled(f"The ORATS request budget is spent. {error}",
                                    retry_after=error.retry_after) from None

    def get(self, path: str, params: dict) -> list[dict]:
        for attempt in range(1, self.attempts + 1):
            self._acquire()
            with self._count_lock:
                self.requests_made += 1
            try:
                response = self._session().get(
                    f"{self.base_url}/{path}", params={**params, "token": self.token}, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as error:
                failure = ProviderUnavailable(f"ORATS at {self.host} did not answer /{path}: {type(error).__name__}.")
                retry_after = None
            else:
                if response.status_code not in RETRY_STATUSES:
                    return self._rows(path, response)
                failure = ProviderUnavailable(f"ORATS answered HTTP {response.status_code} to /{path}.")
                retry_after = response.headers.get("Retry-After")
            if attempt == self.attempts:
                raise failure from None
            delay = self.backoff * 2 ** (attempt - 1) + random.uniform(0, self.backoff)  # noqa: S311 - jitter
            if retry_after and retry_after.isdigit():
                delay = max(delay, min(float(retry_after), 30.0))
            logger.warning("ORATS /%s failed (%s); retry %d in %.2fs", path, failure, attempt, delay)
            self.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def _rows(self, path: str, response: requests.Response) -> list[dict]:
        body = self._json(response)
        detail = ""
        if isinstance(body, dict):
            detail = str(body.get("message") or body.get("error") or "")
        if response.status_code in (401, 403):
            raise ProviderAuthError(
                f"ORATS refused the token (HTTP {response.status_code}) for /{path}"
                + (f": {self._redact(detail)}" if detail else ": no access to this resource.")
            )
        if response.status_code >= 400:
            raise ProviderResponseError(
                f"ORATS answered HTTP {response.status_code} to /{path}: {self._redact(detail)}"
            )
        if body is None:
            snippet = " ".join(response.text[:80].split())
            raise ProviderResponseError(f"ORATS answered /{path} with non-JSON ({self._redact(snippet)!r}…).")
        if not isinstance(body, dict) or body.get("error") or body.get("message"):
            text = self._redact(detail or str(body)[:120])
            raise ProviderResponseError(f"ORATS answered /{path} with an error: {text}")
        rows = body.get("data")
        if rows is None:
            return []
        if not isinstance(rows, list):
            raise ProviderResponseError(f"ORATS answered /{path} with `data` that is not a list.")
        return [row for row in rows if isinstance(row, dict)]

    @staticmethod
    def _json(response: requests.Response):
        try:
            return response.json()
        except ValueError:
            return None

    def _redact(self, text: str) -> str:
        return text.replace(self.token, "***") if self.token else text


class OratsProvider(MarketDataProvider):
    source = SOURCE
    internals_missing = "ORATS offers no advance/decline or market-wide put/call figures."

    def __init__(
        self,
        client: OratsClient,
        *,
        live: bool = False,
        max_workers: int = 4,
        clock: market_clock.Clock = market_clock.now,
    ):
        self.client = client
        self.live = live
        self.delayed = not live  # datav2 without /live is 15 minutes late
        self.max_workers = max(1, max_workers)
        self.clock = clock

    def option_quotes(self, contracts: Iterable[OptionContract | str]) -> dict[str, OptionQuote]:
        wanted = as_contracts(contracts)
        by_ticker: dict[str, list[OptionContract]] = defaultdict(list)
        for contract in wanted.values():
            by_ticker[underlying_of(contract)].append(contract)
        if not by_ticker:
            return {}
        today = market_clock.market_date(self.clock())
        jobs = sorted(by_ticker.items())
        quotes: dict[str, OptionQuote] = {}
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(jobs))) as pool:
            for found in pool.map(lambda job: self._quote_ticker(job[0], job[1], today), jobs):
                quotes.update(found)
        return quotes

    def _quote_ticker(self, ticker: str, contracts: list[OptionContract], today: date) -> dict[str, OptionQuote]:
        days = [(contract.expiry - today).days for contract in contracts]
        params = {
            "ticker": ticker,
            "fields": STRIKE_FIELDS + (LIVE_EXTRA_FIELDS if self.live else ""),
            "dte": f"{max(0, min(days) - DTE_PADDING)},{max(0, max(days)) + DTE_PADDING}",
        }
        rows = self.client.get("live/strikes" if self.live else "strikes", params)
        by_key = {}
        for row in rows:
            key = row_key(row)
            if key is not None and str(row.get("ticker", ticker)).upper() == ticker:
                by_key[key] = row
        fetched = self.clock()
        found = {}
        for contract in contracts:
            row = by_key.get((contract.expiry, contract.strike))
            if row is None:
                logger.info("ORATS has no row for %s", contract.symbol)
                continue
            found[contract.symbol] = quote_from_row(row, contract, source=self.source, fallback_time=fetched)
        return found

    def _strikes(self, params: dict) -> list[dict]:
        return self.client.get("live/strikes" if self.live else "strikes", params)

    def expirations(self, ticker: str) -> list[date]:
        """The expiries in the ticker's strikes rows (one request, two columns)."""
        ticker = ticker.upper()
        rows = self._strikes({"ticker": ticker, "fields": "ticker,expirDate"})
        days = set()
        for row in rows:
            if str(row.get("ticker", ticker)).upper() != ticker:
                continue
            try:
                days.add(date.fromisoformat(str(row.get("expirDate"))[:10]))
            except ValueError:
                continue
        if not days:
            raise UnknownSymbol(f"ORATS lists no options on {ticker}.")
        today = market_clock.market_date(self.clock())
        return sorted(day for day in days if day >= today)

    def option_chain(self, underlying: str, expiry: date) -> list[OptionQuote]:
        """Every strike ORATS has for one expiry, call and put (one `strikes` request)."""
        ticker = underlying.upper()
        days = (expiry - market_clock.market_date(self.clock())).days
        params = {
            "ticker": ticker,
            "fields": STRIKE_FIELDS + (LIVE_EXTRA_FIELDS if self.live else ""),
            "dte": f"{max(0, days - DTE_PADDING)},{max(0, days) + DTE_PADDING}",
        }
        fetched = self.clock()
        chain = []
        for row in self._strikes(params):
            key = row_key(row)
            if key is None or key[0] != expiry or str(row.get("ticker", ticker)).upper() != ticker:
                continue
            for kind in ("CALL", "PUT"):
                contract = OptionContract(root=ticker, expiry=expiry, option_type=kind, strike=key[1])
                chain.append(quote_from_row(row, contract, source=self.source, fallback_time=fetched))
        return sorted(chain, key=lambda quote: (quote.contract.strike, quote.contract.option_type))

    def underlying_quotes(self, symbols: Iterable[str]) -> dict[str, UnderlyingQuote]:
        tickers = sorted({symbol.upper() for symbol in symbols})
        quotes = {}
        for start in range(0, len(tickers), TICKERS_PER_SUMMARY_REQUEST):
            chunk = tickers[start : start + TICKERS_PER_SUMMARY_REQUEST]
            rows = self.client.get("summaries", {"ticker": ",".join(chunk), "fields": "ticker,stockPrice,updatedAt"})
            fetched = self.clock()
            for row in rows:
                ticker, last = str(row.get("ticker", "")).upper(), price(row.get("stockPrice"))
                if ticker in chunk and last is not None:
                    quotes[ticker] = UnderlyingQuote(
                        symbol=ticker, last=last, bid=None, ask=None,
                        quote_time=parse_time(row.get("updatedAt")) or fetched, source=self.source,
                    )
        return quotes

    def bars(self, symbol: str, interval: Interval | str, start: datetime, end: datetime) -> list[Bar]:
        """Daily bars from `hist/dailies`, which takes no date range, so the rows are filtered here."""
        interval = Interval(interval)
        if option_contract(symbol) is not None:
            raise UnsupportedRequest("ORATS offers no bars of option contracts.")
        if interval is not Interval.DAILY:
            raise UnsupportedRequest("ORATS offers daily stock bars only; use another source for intraday bars.")
        ticker = symbol.upper()
        first, last = market_clock.market_date(start), market_clock.market_date(end)
        bars = []
        for row in self.client.get("hist/dailies", {"ticker": ticker}):
            try:
                day = date.fromisoformat(str(row.get("tradeDate"))[:10])
            except ValueError:
                continue
            if not first <= day <= last:
                continue
            values = [price(row.get(name)) for name in ("open", "hiPx", "loPx", "clsPx")]
            session = market_clock.session_for(day)
            if None in values or not session.is_trading_day or not start <= session.open < end:
                continue
            bars.append(
                Bar(
                    symbol=ticker, interval=interval, start=session.open, open=values[0], high=values[1],
                    low=values[2], close=values[3], volume=_whole(row.get("stockVolume")),
                    quote_time=parse_time(row.get("updatedAt")) or session.close, source=self.source,
                )
            )
        return sorted(bars, key=lambda bar: bar.start)
