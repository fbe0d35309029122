"""The entry-context collector: indicators per timeframe and the market regime, as of the entry.

A trade's open asks for it after the commit (`trades.services.context`); the Celery task
`monitoring.collect_entry_context` runs `entry_context_collect`, which reads the trade as its
owner, fetches bars from the market-data layer outside any transaction, and hands the parts to
`trades.services.trade_context_fill`, which writes only parts still empty.

Point in time: the entry instant is the cut-off. Bars are asked for up to it, and any bar that
would end after it, or was observed after it, is dropped whatever the source returned (a bar
still forming at entry would otherwise carry its later close). Quotes observed after the entry
are refused. So the task may run late, or be retried, and still store only what was knowable.

Failures never reach the trade: each timeframe and each regime item that cannot be had is
recorded under the part's `missing` with the reason, and the rest is stored. Every part is
stamped with `as_of`, the end of the newest data it used.

A spent rate budget is not a failure: the collection is background work (its provider never
waits for the shared budget, see `monitoring.marketdata.provider_for`), so when a request gets no
slot it stops, writes nothing, keeps the bars it already fetched in the cache (bars before the
entry never change) and says when to come back (`ContextReport.retry_in`); the task defers
itself, and the next run starts where this one stopped, so even a budget smaller than one
collection is never spent twice on the same bars. Only the last allowed run records what is
still missing, as for a source that is down.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from tradeoptions import tenancy
from trades.models import PaperTrade
from trades.services import trade_context_fill

from . import clock as market_clock
from . import indicators
from .marketdata import Interval, MarketDataError, MarketDataProvider, ProviderThrottled, ProviderUnavailable
from .sectors import sector_etf

logger = logging.getLogger(__name__)

COLLECTOR = "monitoring.collect_entry_context"
COLLECTED_PARTS = ("signals_snapshot", "market_regime", "order_book_state")
HOUR = timedelta(hours=1)
# Sessions of history fetched before the entry's own, enough for the 200-bar SMA and the EMAs'
# warm-up: 1m ≈ 390 bars a session; 15m ≈ 26, also resampled to 1h (≈ 7 a session).
SESSIONS_BACK = {Interval.MINUTE: 1, Interval.FIVE_MINUTES: 4, Interval.FIFTEEN_MINUTES: 36, Interval.DAILY: 300}
TIMEFRAMES = {"1m": Interval.MINUTE, "5m": Interval.FIVE_MINUTES, "15m": Interval.FIFTEEN_MINUTES,
              "1h": Interval.FIFTEEN_MINUTES, "daily": Interval.DAILY}
REGIME_SESSIONS = 45  # daily closes for the % changes and 30 daily returns of correlation
CORRELATION_RETURNS = 30
SPY, VIX = "SPY", "VIX"
INTERNALS = ("advance_decline", "put_call_ratio")
# Bars fetched by a collection that was deferred are kept this long for its next run.
FETCHED_KEPT_FOR = timedelta(hours=2)
LONGEST_DEFERRAL = 60.0  # seconds; plus jitter growing with each deferral, up to as much again


@dataclass(frozen=True)
class ContextReport:
    trade_id: int
    filled: list[str] = field(default_factory=list)
    missing: dict[str, dict[str, str]] = field(default_factory=dict)
    skipped: str = ""
    retry_in: float | None = None  # deferred: the rate budget had no slot; run again in this many seconds


class Gaps:
    """What could not be had, by item, with the reason; remembers whether the source was down.
    With `defer_throttled`, a spent rate budget is not noted but stops the whole collection."""

    def __init__(self, *, defer_throttled: bool = False) -> None:
        self.reasons: dict[str, str] = {}
        self.unavailable = False
        self.defer_throttled = defer_throttled

    def note(self, item: str, reason: str | Exception) -> None:
        self.reasons[item] = str(reason)
        self.unavailable |= isinstance(reason, ProviderUnavailable)

    def guard(self, item: str, work: Callable[[], dict]) -> dict:
        """Run `work`; a market-data failure is noted under `item` and yields nothing."""
        try:
            return work()
        except ProviderThrottled:
            if self.defer_throttled:
                raise
            self.note(item, "The market-data rate budget had no slot left for the entry context.")
        except (MarketDataError, market_clock.OutsideCalendar) as error:
            self.note(item, error)
        except Exception:  # a fault barrier: the trade is open, its context must not crash the job
            logger.exception("Entry context: %s failed", item)
            self.note(item, "Unexpected error while collecting (see the worker log).")
        return {}


class PointInTimeBars:
    """Bars of one provider up to a cut-off, as data frames, fetched once per symbol and interval."""

    def __init__(self, provider: MarketDataProvider, cutoff: datetime,
                 fetched: dict[tuple[str, Interval], tuple[date, pd.DataFrame]] | None = None) -> None:
        self.provider, self.cutoff = provider, cutoff
        self.dropped = 0
        self._frames: dict[tuple[str, Interval], tuple[date, pd.DataFrame]] = dict(fetched or {})

    @property
    def fetched(self) -> dict[tuple[str, Interval], tuple[date, pd.DataFrame]]:
        """What was fetched so far, to hand to the next run of a deferred collection."""
        return dict(self._frames)

    def frame(self, symbol: str, interval: Interval, sessions_back: int) -> pd.DataFrame:
        """Complete bars of `symbol` from `sessions_back` sessions before the entry's, oldest first:
        columns start, end, open, high, low, close, volume (floats) and quote_time."""
        first = _session_days_back(self.cutoff, sessions_back)
        cached = self._frames.get((symbol, interval))
        if cached is None or cached[0] > first:
            cached = (first, self._fetch(symbol, interval, first))
            self._frames[(symbol, interval)] = cached
        frame = cached[1]
        return frame[frame["start"] >= market_clock.session_for(first).open].reset_index(drop=True)

    def _fetch(self, symbol: str, interval: Interval, first: date) -> pd.DataFrame:
        start = market_clock.session_for(first).open
        bars = self.provider.bars(symbol, interval, start, self.cutoff)
        rows = [(bar.start, _bar_end(bar.start, interval), float(bar.open), float(bar.high), float(bar.low),
                 float(bar.close), np.nan if bar.volume is None else float(bar.volume), bar.quote_time)
                for bar in bars]
        frame = pd.DataFrame(rows, columns=["start", "end", "open", "high", "low", "close", "volume", "quote_time"])
        for moment in ("start", "end", "quote_time"):  # sources stamp in New York or UTC: one zone for the math
            frame[moment] = pd.to_datetime(frame[moment], utc=True)
        known = (frame["end"] <= self.cutoff) & (frame["quote_time"] <= self.cutoff) & (frame["start"] >= start)
        self.dropped += int((~known).sum())
        return frame[known].sort_values("start").drop_duplicates("start").reset_index(drop=True)


def _bar_end(start: datetime, interval: Interval) -> datetime:
    session = market_clock.session_for(market_clock.market_date(start))
    if interval is Interval.DAILY or session.close is None:
        return session.close or start + interval.length
    return min(start + interval.length, session.close)


def _session_days_back(cutoff: datetime, count: int) -> date:
    """The session `count` sessions before the last one that opened at or before `cutoff`."""
    day = market_clock.market_date(cutoff)
    window = market_clock.trading_days(max(day - timedelta(days=count * 2 + 10), market_clock.FIRST_DAY), day)
    opened = [session for session in window if market_clock.session_for(session).open <= cutoff]
    return opened[max(len(opened) - 1 - count, 0)] if opened else window[0]


def hourly(bars: pd.DataFrame, cutoff: datetime) -> pd.DataFrame:
    """15-minute bars grouped into hours counted from each session's open (9:30–10:30, …, the last
    one shorter), keeping only hours complete by the cut-off."""
    if bars.empty:
        return bars
    days = bars["start"].map(market_clock.market_date)
    opens = days.map({day: market_clock.session_for(day).open for day in days.unique()})
    closes = days.map({day: market_clock.session_for(day).close for day in days.unique()})
    bucket = opens + ((bars["start"] - opens) // HOUR) * HOUR
    grouped = bars.assign(bucket=bucket, close_of_day=closes).groupby("bucket", sort=True)
    frame = grouped.agg(
        open=("open", "first"), high=("high", "max"), low=("low", "min"), close=("close", "last"),
        volume=("volume", "sum"), quote_time=("quote_time", "max"), close_of_day=("close_of_day", "first"),
    )
    frame = frame.reset_index().rename(columns={"bucket": "start"})
    frame["end"] = np.minimum(frame["start"] + HOUR, frame["close_of_day"])
    return frame[frame["end"] <= cutoff].drop(columns="close_of_day").reset_index(drop=True)


def signals_snapshot(bars: PointInTimeBars, ticker: str, gaps: Gaps) -> dict:
    """Indicators of `ticker` on each timeframe, each stamped with the end of its last bar."""
    snapshot = {}
    for name, interval in TIMEFRAMES.items():
        def one(name=name, interval=interval) -> dict:
            frame = bars.frame(ticker, interval, SESSIONS_BACK[interval])
            if name == "1h":  # no source offers hourly bars: four quarters make an hour
                frame = hourly(frame, bars.cutoff)
            if frame.empty:
                raise MarketDataError(f"No {name} bars of {ticker} before the entry.")
            return {**indicators.signals(frame), "as_of": frame["end"].iloc[-1]}

        if values := gaps.guard(name, one):
            snapshot[name] = values
    return _part(snapshot, gaps, bars.provider.source, stamps=[values["as_of"] for values in snapshot.values()])


def _price_and_change(bars: PointInTimeBars, symbol: str) -> tuple[float, float | None, datetime]:
    """The last price known at the cut-off and its % change from the previous session's close:
    from today's 1-minute bars when there are any, else from the last two daily closes."""
    daily = bars.frame(symbol, Interval.DAILY, REGIME_SESSIONS)
    try:
        minute = bars.frame(symbol, Interval.MINUTE, 0)
    except MarketDataError:  # e.g. a daily-only source: the last close is the last price known
        minute = pd.DataFrame()
    if not minute.empty and (daily.empty or minute["end"].iloc[-1] > daily["end"].iloc[-1]):
        price, moment = minute["close"].iloc[-1], minute["end"].iloc[-1]
        reference = daily["close"].iloc[-1] if not daily.empty else None
    elif not daily.empty:
        price, moment = daily["close"].iloc[-1], daily["end"].iloc[-1]
        reference = daily["close"].iloc[-2] if len(daily) > 1 else None
    else:
        raise MarketDataError(f"No bars of {symbol} before the entry.")
    change = None if not reference else round((price / reference - 1) * 100, 4)
    return round(float(price), 4), change, moment


def correlation(ticker_daily: pd.DataFrame, other_daily: pd.DataFrame, returns: int = CORRELATION_RETURNS) -> float:
    """Pearson correlation of the last `returns` daily close-to-close returns both series share."""
    closes = pd.concat([ticker_daily.set_index("start")["close"], other_daily.set_index("start")["close"]],
                       axis=1, join="inner").sort_index()
    changes = closes.pct_change().dropna().tail(returns)
    if len(changes) < returns:
        raise MarketDataError(f"Only {len(changes)} daily returns in common; {returns} are needed.")
    return round(float(changes.iloc[:, 0].corr(changes.iloc[:, 1])), 4)


def market_internals(provider: MarketDataProvider, cutoff: datetime) -> dict:
    """Advance/decline and the put/call ratio, each `{"value", "missing"}`: the value as of the
    entry, or null with why the source could not give it."""
    try:
        values = provider.market_internals(cutoff)
        reason = ""
    except MarketDataError as error:
        values, reason = {}, str(error)
    return {key: {"value": values.get(key), "missing": "" if values.get(key) is not None else
                  reason or f"The {provider.source} source gave no {key.replace('_', ' ')}."}
            for key in INTERNALS}


def market_regime(bars: PointInTimeBars, ticker: str, gaps: Gaps) -> dict:
    """SPY's price and change, VIX, the ticker's sector ETF with its change and 30-day correlation
    of daily returns to the ticker (an unknown ticker's sector is `unknown`), and the market's
    internals (`internals`, see `market_internals`)."""
    regime, stamps = {}, []

    def quote(symbol: str, price_key: str, change_key: str) -> dict:
        price, change, moment = _price_and_change(bars, symbol)
        stamps.append(moment)
        return {price_key: price, change_key: change}

    regime |= gaps.guard("spy", lambda: quote(SPY, "spy_price", "spy_change_pct"))
    regime |= gaps.guard("vix", lambda: quote(VIX, "vix", "vix_change_pct"))
    etf = sector_etf(ticker)
    regime["sector_etf"] = etf or "unknown"
    if etf is None:
        gaps.note("sector_etf", f"{ticker} is not in the sector table (monitoring/sectors.py).")
    else:
        regime |= gaps.guard("sector", lambda: quote(etf, "sector_price", "sector_change_pct"))
        regime |= gaps.guard("sector_corr_30d", lambda: {"sector_corr_30d": correlation(
            bars.frame(ticker, Interval.DAILY, REGIME_SESSIONS), bars.frame(etf, Interval.DAILY, REGIME_SESSIONS))})
    regime["internals"] = market_internals(bars.provider, bars.cutoff)
    return _part(regime, gaps, bars.provider.source, stamps=stamps)


def order_book(provider: MarketDataProvider, option_symbol: str, cutoff: datetime, gaps: Gaps) -> dict:
    """The contract's book, for a trade opened without one: only a quote observed by the entry counts."""

    def fetch() -> dict:
        quote = provider.option_quotes([option_symbol]).get(option_symbol)
        if quote is None:
            raise MarketDataError(f"{option_symbol} is not known to the {provider.source} source.")
        if quote.quote_time > cutoff:
            raise MarketDataError(f"The quote was observed at {quote.quote_time.isoformat()}, after the entry.")
        spread = None if not quote.mid else round(float((quote.ask - quote.bid) / quote.mid * 100), 4)
        prices = {name: getattr(quote, name) for name in ("bid", "ask", "last", "delta", "gamma", "theta", "vega",
                                                          "iv")}
        return {**{name: None if value is None else float(value) for name, value in prices.items()},
                "spread_pct": spread, "volume": quote.volume, "open_interest": quote.open_interest,
                "as_of": quote.quote_time}

    return gaps.guard("quote", fetch) or {"as_of": None}


def _part(values: dict, gaps: Gaps, source: str, *, stamps: list[datetime] | None = None) -> dict:
    as_of = max(stamps) if stamps else values.get("as_of")
    return {**values, "as_of": as_of, "source": source, "missing": gaps.reasons}


def _fetched_key(trade_id: int, entry_at: datetime, source: str) -> str:
    return f"entry-context:fetched:{trade_id}:{entry_at.isoformat()}:{source}"


def entry_context_collect(*, trade_id: int, owner_id: int, entry_at: datetime,
                          provider: MarketDataProvider | Callable[[], MarketDataProvider],
                          retry_unavailable: bool = False, defer_throttled: bool = False,
                          deferrals: int = 0) -> ContextReport:
    """Collect and store the context parts the trade still lacks, as of `entry_at`.

    `provider` may be a factory, so that a source that cannot even be built (no token) is
    recorded as missing like any other failure. With `retry_unavailable`, a source that is down
    raises ProviderUnavailable instead (the task retries later; the bars before the entry will
    not have changed); without it, the outage is recorded in `missing`. With `defer_throttled`,
    a request refused by the rate budget ends the run with nothing written and `retry_in` set
    (the slot's wait, capped, plus jitter growing with `deferrals`, the runs deferred so far);
    without it, what could not be fetched is recorded in `missing`.
    """
    with tenancy.acting_as(owner_id):
        trade = PaperTrade.objects.filter(pk=trade_id).values("ticker", "option_symbol", *COLLECTED_PARTS).first()
    if trade is None:
        return ContextReport(trade_id, skipped="no such trade for this owner")
    wanted = [name for name in COLLECTED_PARTS if trade[name] in ({}, None)]
    if not wanted:
        return ContextReport(trade_id, skipped="nothing to collect")
    try:
        source = provider() if callable(provider) else provider
    except (ImproperlyConfigured, MarketDataError) as error:
        parts = {name: {"as_of": None, "missing": {"source": str(error)}} for name in wanted}
    else:
        key = _fetched_key(trade_id, entry_at, source.source)
        bars = PointInTimeBars(source, entry_at, cache.get(key) if deferrals else None)
        try:
            parts, unavailable = _collect(bars, trade["ticker"], trade["option_symbol"], wanted,
                                          defer_throttled=defer_throttled)
        except ProviderThrottled as throttled:
            cache.set(key, bars.fetched, timeout=FETCHED_KEPT_FOR.total_seconds())
            wait = min(max(throttled.retry_after or 1.0, 1.0), LONGEST_DEFERRAL)
            retry_in = wait + random.uniform(0, min(2.0 ** deferrals, LONGEST_DEFERRAL))
            return ContextReport(trade_id, skipped=f"deferred: {throttled}", retry_in=round(retry_in, 3))
        if deferrals:
            cache.delete(key)
        if retry_unavailable and unavailable:
            raise ProviderUnavailable(f"The {source.source} source is unavailable; the entry context will be retried.")
    filled = trade_context_fill(owner_id=owner_id, trade_id=trade_id, parts=parts, entry_at=entry_at,
                                actor_label=COLLECTOR)
    return ContextReport(trade_id, filled=filled,
                         missing={name: parts[name]["missing"] for name in filled if parts[name].get("missing")})


def _collect(bars: PointInTimeBars, ticker: str, option_symbol: str, wanted: list[str], *,
             defer_throttled: bool) -> tuple[dict[str, dict], bool]:
    """The wanted parts, and whether the source was down for any of them."""
    provider, cutoff = bars.provider, bars.cutoff
    builders = {
        "signals_snapshot": lambda gaps: signals_snapshot(bars, ticker, gaps),
        "market_regime": lambda gaps: market_regime(bars, ticker, gaps),
        "order_book_state": lambda gaps: order_book(provider, option_symbol, cutoff, gaps),
    }
    parts, unavailable = {}, False
    for name in wanted:
        gaps = Gaps(defer_throttled=defer_throttled)
        parts[name] = _part(builders[name](gaps), gaps, provider.source)
        unavailable |= gaps.unavailable
    if bars.dropped:
        logger.info("Entry context of %s: %d bar(s) after the entry dropped", ticker, bars.dropped)
    return parts, unavailable
