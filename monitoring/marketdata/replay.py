"""Replays recorded quotes from a CSV file, answering as of the injected clock's time.

For re-running a day: record (or export from ORATS) rows, then drive the monitor with a clock
that walks through the day. The columns are ORATS strikes columns, so an ORATS one-minute or
snapshot export loads as it is, plus the time each row was observed:

* `ticker` (required) and `quoteDate` (required; ISO-8601, `Z` or an offset; `updatedAt` is used
  when `quoteDate` is absent; a time without a zone is taken as UTC, as ORATS writes them).
* Option rows: `expirDate` (YYYY-MM-DD), `strike`, and any of `stockPrice`, `callBidPrice`,
  `callAskPrice`, `callValue`, `callVolume`, `callOpenInterest`, `callMidIv`, the same `put…`
  columns, `smvVol`, `delta` (the call's), `gamma`, `theta`, `vega`. Empty cells are nulls.
* Underlying-only rows (e.g. VIX, sector ETFs): `expirDate` and `strike` left empty, `stockPrice` set.

The answer for a contract is its latest row observed at or before "now"; nothing after "now" is
ever visible, so a replay cannot peek into its own future.
"""

from __future__ import annotations

import bisect
import csv
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from brokers.occ import OptionContract
from monitoring import clock as market_clock

from .base import (
    Bar,
    Interval,
    MarketDataError,
    MarketDataProvider,
    OptionQuote,
    UnderlyingQuote,
    UnsupportedRequest,
    as_contracts,
    option_contract,
    price,
    underlying_of,
)
from .orats import parse_time, quote_from_row, row_key

SOURCE = "replay"


class ReplayDataError(MarketDataError):
    """The recording cannot be read; the message names the file and line."""


class _Series:
    """Rows of one key in time order, searchable by time."""

    def __init__(self):
        self.times: list[datetime] = []
        self.rows: list[dict] = []

    def add(self, at: datetime, row: dict) -> None:
        position = bisect.bisect_right(self.times, at)
        self.times.insert(position, at)
        self.rows.insert(position, row)

    def as_of(self, at: datetime) -> dict | None:
        position = bisect.bisect_right(self.times, at)
        return self.rows[position - 1] if position else None


class ReplayProvider(MarketDataProvider):
    source = SOURCE
    internals_missing = "A replay holds recorded option and underlying prices only: no breadth or put/call figures."

    def __init__(self, path: str | Path, *, clock: market_clock.Clock = market_clock.now):
        self.path = Path(path)
        self.clock = clock
        self._options: dict[tuple[str, date, Decimal], _Series] = defaultdict(_Series)
        self._underlyings: dict[str, _Series] = defaultdict(_Series)
        self._load()

    def _load(self) -> None:
        try:
            handle = self.path.open(newline="")
        except OSError as error:
            raise ReplayDataError(f"Cannot open the replay file {self.path}: {error.strerror}.") from None
        with handle:
            reader = csv.DictReader(handle)
            missing = {"ticker"} - set(reader.fieldnames or ())
            if missing or not {"quoteDate", "updatedAt"} & set(reader.fieldnames or ()):
                raise ReplayDataError(f"{self.path} needs the columns ticker and quoteDate (or updatedAt).")
            for line, raw in enumerate(reader, start=2):
                row = {name: (value if value not in ("", None) else None) for name, value in raw.items()}
                at = parse_time(row.get("quoteDate")) or parse_time(row.get("updatedAt"))
                ticker = (row.get("ticker") or "").upper()
                if at is None or not ticker:
                    raise ReplayDataError(f"{self.path}:{line}: a row needs a ticker and a quoteDate.")
                row["ticker"], row["quoteDate"] = ticker, at.isoformat()
                if row.get("stockPrice") is not None:
                    self._underlyings[ticker].add(at, row)
                if row.get("expirDate") or row.get("strike"):
                    key = row_key(row)
                    if key is None:
                        raise ReplayDataError(f"{self.path}:{line}: expirDate or strike is not readable.")
                    self._options[(ticker, *key)].add(at, row)

    def option_quotes(self, contracts: Iterable[OptionContract | str]) -> dict[str, OptionQuote]:
        at = self.clock().astimezone(UTC)
        quotes = {}
        for symbol, contract in as_contracts(contracts).items():
            series = self._options.get((underlying_of(contract), contract.expiry, contract.strike))
            row = series.as_of(at) if series else None
            if row is not None:
                quotes[symbol] = quote_from_row(row, contract, source=self.source, fallback_time=at)
        return quotes

    def underlying_quotes(self, symbols: Iterable[str]) -> dict[str, UnderlyingQuote]:
        at = self.clock().astimezone(UTC)
        quotes = {}
        for symbol in {symbol.upper() for symbol in symbols}:
            series = self._underlyings.get(symbol)
            row = series.as_of(at) if series else None
            if row is not None:
                quotes[symbol] = UnderlyingQuote(
                    symbol=symbol, last=price(row["stockPrice"]), bid=None, ask=None,
                    quote_time=parse_time(row["quoteDate"]), source=self.source,
                )
        return quotes

    def bars(self, symbol: str, interval: Interval | str, start: datetime, end: datetime) -> list[Bar]:
        """Bars built from the recorded underlying prices, bucketed from each session's open."""
        interval, symbol = Interval(interval), symbol.upper()
        if option_contract(symbol) is not None:
            raise UnsupportedRequest("A replay builds bars from recorded underlying prices only, not of options.")
        series = self._underlyings.get(symbol)
        end = min(end, self.clock())
        if series is None or end <= start:
            return []
        buckets: dict[datetime, list[tuple[datetime, Decimal]]] = defaultdict(list)
        first = bisect.bisect_left(series.times, start)
        for at, row in zip(series.times[first:], series.rows[first:], strict=True):
            if at >= end:
                break
            session = market_clock.session_for(market_clock.market_date(at))
            if not session.contains(at):
                continue
            if interval is Interval.DAILY:
                bucket = session.open
            else:
                bucket = session.open + (at - session.open) // interval.length * interval.length
            buckets[bucket].append((at, price(row["stockPrice"])))
        bars = []
        for bucket, samples in sorted(buckets.items()):
            values = [value for _, value in samples]
            bars.append(
                Bar(
                    symbol=symbol, interval=interval, start=bucket, open=values[0], high=max(values), low=min(values),
                    close=values[-1], volume=None, quote_time=samples[-1][0], source=self.source,
                )
            )
        return bars
