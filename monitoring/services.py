"""The monitor cycle: what runs while the market is open to keep every position true.

Every function here sees all tenants: it runs in `tenancy.system_context()`, because marking
positions is a system job over every user's trades (no web request can reach it). Work is
batched so that database round trips stay constant however many positions are open, and each
distinct contract is quoted once per cycle however many users hold it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db import connection

from brokers.market import Market, default_market
from brokers.models import PaperOrder
from brokers.paper import FillRules, match_orders
from tradeoptions import tenancy
from trades.models import CONTRACT_MULTIPLIER, PaperTrade, TradeStatus

from . import clock as market_clock
from .marketdata import MarketDataProvider, OptionQuote
from .models import SnapshotKind

logger = logging.getLogger(__name__)

SNAPSHOT_PERIOD = timedelta(seconds=40)
DAY = 24 * 60 * 60
HELD_STATUSES = (TradeStatus.OPEN, TradeStatus.CLOSING)  # a position exists at the broker


def cycle_slot(at: datetime, period: timedelta = SNAPSHOT_PERIOD) -> datetime:
    """The scheduled slot `at` falls in. Snapshots are stamped with it, not with the wall clock,
    so a retried or duplicated cycle writes onto the same (trade, slot, kind) and is ignored."""
    seconds = int(period.total_seconds())
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


@dataclass(frozen=True)
class SnapshotReport:
    slot: datetime
    kind: str
    trades: int
    contracts: int
    written: int
    unquoted: int
    skipped: str = ""


def snapshot_positions(*, provider: MarketDataProvider, at: datetime, kind: str = SnapshotKind.INTRADAY,
                       slot: datetime | None = None) -> SnapshotReport:
    """Quote every held contract once, write one snapshot per held trade, refresh the trades' marks.

    Intraday snapshots only happen while the market is open (or FORCE_MARKET_OPEN); bookends are
    taken by their own schedule at their own times. Three round trips to the database in all.
    """
    slot = slot or cycle_slot(at)
    if kind == SnapshotKind.INTRADAY and not market_clock.is_market_open(at):
        return SnapshotReport(slot, kind, 0, 0, 0, 0, skipped="market closed")
    with tenancy.system_context():
        trades = list(
            PaperTrade.objects.filter(status__in=HELD_STATUSES)
            .values_list("id", "owner_id", "option_symbol", "entry_price", "qty")
        )
        if not trades:
            return SnapshotReport(slot, kind, 0, 0, 0, 0)
        quotes = provider.option_quotes(sorted({symbol for _, _, symbol, _, _ in trades}))
        rows = [_snapshot_row(trade, quotes[trade[2]]) for trade in trades if trade[2] in quotes]
        written = _insert_snapshots(rows, slot, kind, source=_source(quotes))
        _update_marks(rows, at)
    unquoted = len(trades) - len(rows)
    if unquoted:
        logger.warning("snapshot %s: %d held trade(s) had no quote this cycle", slot.isoformat(), unquoted)
    return SnapshotReport(slot, kind, len(trades), len(quotes), written, unquoted)


def _source(quotes: dict[str, OptionQuote]) -> str:
    return next(iter(quotes.values())).source if quotes else ""


def _snapshot_row(trade, quote: OptionQuote) -> dict:
    trade_id, owner_id, symbol, entry, qty = trade
    mark = quote.mark if quote.mark is not None else quote.mid
    pnl = (mark - entry) * qty * CONTRACT_MULTIPLIER if mark is not None else None
    return {
        "trade_id": trade_id, "owner_id": owner_id, "mark": mark, "bid": quote.bid, "ask": quote.ask,
        "delta": quote.delta, "gamma": quote.gamma, "theta": quote.theta, "vega": quote.vega, "iv": quote.iv,
        "underlying": quote.underlying_price, "quote_time": quote.quote_time, "pnl": pnl,
    }


def _column(rows, name):
    return [row[name] for row in rows]


def _insert_snapshots(rows: list[dict], slot: datetime, kind: str, *, source: str) -> int:
    """One INSERT for all rows; the unique (trade, timestamp, kind) makes a rerun a no-op."""
    rows = [row for row in rows if row["mark"] is not None]
    if not rows:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO monitoring_pricesnapshot
                (trade_id, owner_id, timestamp, kind, mark_price, bid, ask, delta, gamma, theta, vega, iv,
                 underlying, source, quote_time)
            SELECT trade_id, owner_id, %s, %s, mark, bid, ask, delta, gamma, theta, vega, iv, underlying, %s, qt
              FROM unnest(%s::bigint[], %s::bigint[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[],
                          %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[],
                          %s::timestamptz[])
                AS v(trade_id, owner_id, mark, bid, ask, delta, gamma, theta, vega, iv, underlying, qt)
            ON CONFLICT (trade_id, timestamp, kind) DO NOTHING
            """,
            [slot, kind, source, *[_column(rows, name) for name in (
                "trade_id", "owner_id", "mark", "bid", "ask", "delta", "gamma", "theta", "vega", "iv",
                "underlying", "quote_time")]],
        )
        return cursor.rowcount


def _update_marks(rows: list[dict], at: datetime) -> None:
    """One UPDATE for every quoted trade: latest mark, bid/ask, unrealized P&L and its running
    extremes. `version` is not bumped: a new mark is not a change the trader made, and must not
    turn their pending close into a 409."""
    rows = [row for row in rows if row["mark"] is not None]
    if not rows:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE trades_papertrade AS t
               SET current_price = v.mark, current_bid = v.bid, current_ask = v.ask, unrealized_pnl = v.pnl,
                   last_updated = %s, updated_at = %s,
                   max_gain = GREATEST(COALESCE(t.max_gain, v.pnl), v.pnl),
                   max_drawdown = LEAST(COALESCE(t.max_drawdown, v.pnl), v.pnl)
              FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[])
                AS v(id, mark, bid, ask, pnl)
             WHERE t.id = v.id AND t.status IN ('OPEN', 'CLOSING')
            """,
            [at, at, *[_column(rows, name) for name in ("trade_id", "mark", "bid", "ask", "pnl")]],
        )


def match_paper_orders(*, market: Market | None = None, rules: FillRules | None = None) -> int:
    """Fill and expire every account's working orders at the local paper broker, against one
    batch of fresh quotes. Cross-tenant by nature, so in the system context."""
    with tenancy.system_context():
        return match_orders(PaperOrder.objects.all(), market=market or default_market(),
                            rules=rules or FillRules.from_settings())


@dataclass(frozen=True)
class BookendReport:
    kind: str
    due: datetime | None
    taken: SnapshotReport | None = None
    missed: bool = False


def take_due_bookends(*, provider: MarketDataProvider, at: datetime) -> list[BookendReport]:
    """Take the day's pre- and post-market bookends once their moment has come.

    Beat only fires this every minute; the calendar decides (9:25, and 5 minutes after the real
    close: 16:05, or 13:05 on an early close; nothing on holidays). Each bookend is stamped with its
    scheduled time, so it is taken once per (trade, day, kind) however often this runs. A bookend
    found late is still taken while its quotes mean the same thing (the pre-market one until the
    open, the post-market one until the next day's pre-market), else recorded as missed.
    """
    day = market_clock.market_date(at)
    session = market_clock.session_for(day)
    if not session.is_trading_day:
        return []
    reports = []
    windows = [
        (SnapshotKind.PRE_MARKET, session.pre_market_bookend, session.open),
        (SnapshotKind.POST_MARKET, session.post_market_bookend, _next_pre_market(day)),
    ]
    for kind, due, until in windows:
        if at < due:
            continue
        if at >= until:
            if not _bookend_taken(kind, due) and cache.add(f"bookend-missed:{kind}:{due.isoformat()}", 1, 2 * DAY):
                logger.warning("bookend %s of %s missed: the cycle did not run before %s", kind, day, until)
                reports.append(BookendReport(kind, due, missed=True))
            continue
        reports.append(BookendReport(kind, due, taken=snapshot_positions(provider=provider, at=at, kind=kind,
                                                                          slot=due)))
    return reports


def _next_pre_market(day) -> datetime:
    following = market_clock.next_open(market_clock.session_for(day).close)
    return following - market_clock.BOOKEND


def _bookend_taken(kind: str, due: datetime) -> bool:
    from .models import PriceSnapshot

    with tenancy.system_context():
        return PriceSnapshot.objects.filter(kind=kind, timestamp=due).exists()


def schedules_install() -> list[str]:
    """Make django-celery-beat's periodic tasks match `schedules.JOBS`: create, update, switch
    off (SCHEDULE_<NAME>=false) and retire jobs no longer listed. Returns what it did."""
    from django.conf import settings
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from .schedules import JOBS

    done = []
    for job in JOBS:
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=int(job.every.total_seconds()), period=IntervalSchedule.SECONDS
        )
        enabled = bool(getattr(settings, job.setting, True))
        task, created = PeriodicTask.objects.update_or_create(
            name=job.task,
            defaults={"task": job.task, "interval": interval, "crontab": None, "enabled": enabled,
                      "description": job.why, "expire_seconds": int(job.every.total_seconds())},
        )
        done.append(f"{'created' if created else 'updated'} {job.task} every {job.every} "
                    f"({'on' if enabled else f'off: {job.setting}'})")
    listed = [job.task for job in JOBS]
    retired = PeriodicTask.objects.filter(task__startswith="monitoring.").exclude(name__in=listed)
    for name in retired.values_list("name", flat=True):
        done.append(f"retired {name}")
    retired.update(enabled=False)
    return done
