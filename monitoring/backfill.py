"""Filling gaps in a trade's mark history from the market-data source's bars (an ops repair).

The monitor writes one snapshot per trade per 40-second slot while the market is open; when the
workers were down, minutes of a position's life have no mark, and the forensic targets (MFE/MAE,
first touch) are computed from a path with holes. Where the data source keeps a bar history of
the option contract, each bar whose span holds no snapshot at all becomes one INTRADAY snapshot:
its close is the mark, stamped with the last monitor slot inside the bar, so it sits where the
monitor would have written it, and `source` says it came from bars (`<source>:bars`).

Idempotent twice over: a bar whose span already holds a snapshot is not a gap (so a second run
finds nothing to do), and the unique (trade, timestamp, kind) makes any race a no-op. Nothing is
written unless `apply` is true: a dry run reports the same gaps.

Sources without option bars (ORATS, a CSV replay) raise `UnsupportedRequest`; the caller
says so rather than pretending the history is complete.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q

from tradeoptions import tenancy
from trades.models import PaperTrade

from . import clock as market_clock
from .marketdata import Interval, MarketDataProvider
from .models import PriceSnapshot, SnapshotKind
from .services import SNAPSHOT_PERIOD, cycle_slot

INTERVALS = (Interval.MINUTE, Interval.FIVE_MINUTES, Interval.FIFTEEN_MINUTES)
BARS_SOURCE_SUFFIX = ":bars"

Progress = Callable[..., Iterable]


class BackfillError(Exception):
    """The request cannot be served as asked (unknown trade, a trade never opened, bad range)."""


@dataclass(frozen=True)
class TradeBackfill:
    trade_id: int
    option_symbol: str
    bars: int
    gaps: int
    written: int
    first_gap: datetime | None = None
    last_gap: datetime | None = None


@dataclass
class BackfillReport:
    applied: bool
    interval: str
    trades: list[TradeBackfill] = field(default_factory=list)

    @property
    def gaps(self) -> int:
        return sum(trade.gaps for trade in self.trades)

    @property
    def written(self) -> int:
        return sum(trade.written for trade in self.trades)


def new_york_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=market_clock.market_tz())


def backfill_trades(*, trade_id: int | None = None, user: AbstractBaseUser | None = None,
                    start: datetime | None = None, end: datetime | None = None) -> list[PaperTrade]:
    """The trades whose marks a backfill looks at: one trade by id, or every trade that was held
    at some moment of [start, end) (of `user` only, if given). Reads as `user` when given, else
    across tenants: a backfill is an ops job over everyone's history."""
    context = tenancy.acting_as(user.pk) if user is not None else tenancy.system_context()
    with context:
        trades = PaperTrade.objects.filter(entry_date__isnull=False, entry_price__isnull=False)
        if user is not None:
            trades = trades.filter(owner=user)
        if trade_id is not None:
            found = list(PaperTrade.objects.filter(pk=trade_id, **({"owner": user} if user else {})))
            if not found:
                raise BackfillError(f"No trade {trade_id}" + (f" of user {user.get_username()!r}." if user else "."))
            if found[0].entry_date is None or found[0].entry_price is None:
                raise BackfillError(f"Trade {trade_id} was never opened ({found[0].status}): it has no marks.")
            return found
        if start is not None:
            trades = trades.filter(Q(close_date__isnull=True) | Q(close_date__gte=start))
        if end is not None:
            trades = trades.filter(entry_date__lt=end)
        return list(trades.order_by("id"))


def snapshot_gaps_backfill(*, provider: MarketDataProvider, trades: list[PaperTrade], now: datetime,
                           start: datetime | None = None, end: datetime | None = None,
                           interval: Interval | str = Interval.MINUTE, apply: bool = False,
                           progress: Progress | None = None) -> BackfillReport:
    """Find (and with `apply`, fill) the gaps of each trade's marks within its holding period
    clipped to [start, end). Bars are read outside any transaction; each trade's snapshots are
    read and written as its owner."""
    interval = Interval(interval)
    if interval not in INTERVALS:
        raise BackfillError(f"Bars of {interval} cannot fill 40-second marks: use one of "
                            f"{', '.join(i.value for i in INTERVALS)}.")
    if start is not None and end is not None and end <= start:
        raise BackfillError("The range is empty: --to is before --from.")
    report = BackfillReport(applied=apply, interval=interval.value)
    wrap = progress or (lambda items, **_: items)
    for trade in wrap(trades, total=len(trades), desc="trades"):
        report.trades.append(_backfill_trade(provider, trade, interval, now=now, start=start, end=end, apply=apply))
    return report


def _backfill_trade(provider: MarketDataProvider, trade: PaperTrade, interval: Interval, *, now: datetime,
                    start: datetime | None, end: datetime | None, apply: bool) -> TradeBackfill:
    held_from, held_to = trade.entry_date, trade.close_date or now
    window_start = max(held_from, start) if start else held_from
    window_end = min(held_to, end) if end else held_to
    if window_end <= window_start:
        return TradeBackfill(trade.pk, trade.option_symbol, 0, 0, 0)
    bars = provider.bars(trade.option_symbol, interval, window_start, window_end)
    length = interval.length
    with tenancy.acting_as(trade.owner_id):
        taken = sorted(PriceSnapshot.objects.filter(
            trade_id=trade.pk, timestamp__gte=window_start - length, timestamp__lt=window_end + length,
        ).values_list("timestamp", flat=True))
        gaps = [bar for bar in bars if bar.close is not None and not _covered(taken, bar.start, bar.start + length)]
        rows = [_snapshot(trade, bar, length) for bar in gaps]
        written = 0
        if apply and rows:
            stamps = [row.timestamp for row in rows]
            existing = PriceSnapshot.objects.filter(trade_id=trade.pk, kind=SnapshotKind.INTRADAY,
                                                    timestamp__in=stamps)
            before = existing.count()
            PriceSnapshot.objects.bulk_create(rows, ignore_conflicts=True)
            written = existing.count() - before
    return TradeBackfill(trade.pk, trade.option_symbol, len(bars), len(gaps), written,
                         gaps[0].start if gaps else None, gaps[-1].start if gaps else None)


def _covered(taken: list[datetime], start: datetime, end: datetime) -> bool:
    """Is there a snapshot at some moment of [start, end)?"""
    index = bisect.bisect_left(taken, start)
    return index < len(taken) and taken[index] < end


def _snapshot(trade: PaperTrade, bar, length: timedelta) -> PriceSnapshot:
    # The last monitor slot that starts inside the bar: where the monitor would have written.
    slot = cycle_slot(bar.start + length - timedelta(seconds=1), SNAPSHOT_PERIOD)
    return PriceSnapshot(
        trade_id=trade.pk, owner_id=trade.owner_id, timestamp=slot, kind=SnapshotKind.INTRADAY,
        mark_price=bar.close, source=f"{bar.source}{BARS_SOURCE_SUFFIX}"[:16], quote_time=bar.quote_time,
    )
