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
