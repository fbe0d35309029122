"""Figures other apps measure and the trade's own row stores: the monitor's marks and the
forensic targets analytics derives.

Only `trades` writes `trades_papertrade`. monitoring decides what a held trade is worth this
cycle and analytics what a closed trade's path says; each hands the figures over here as plain
data, and each batch is written with ONE set-based statement, so the monitor's database work
stays constant however many positions are open (bench/bench_monitor_cycle.py counts it).

Both are system jobs over every tenant's trades: the caller runs them inside its own
`tenancy.system_context()` transaction, which also decides when the write commits (the monitor
commits a cycle's marks with its snapshots, or neither). Neither opens a transaction of its own:
a single statement is atomic already, and a savepoint would add round trips to every cycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import connection

from tradeoptions.sqlarrays import array_param
from trades.models import TradeStatus

HELD = (TradeStatus.OPEN, TradeStatus.CLOSING)  # a position exists at the broker: only these are marked


@dataclass(frozen=True)
class TradeMark:
    """One held trade's quote this cycle, and the unrealized P&L the monitor derived from it."""

    trade_id: int
    mark: Decimal
    bid: Decimal | None
    ask: Decimal | None
    unrealized_pnl: Decimal


@dataclass(frozen=True)
class LegMark:
    """One leg's quote this cycle (a multi-leg trade's; a single option's lives on its trade row)."""

    leg_id: int
    bid: Decimal | None
    ask: Decimal | None
    mark: Decimal | None
    iv: Decimal | None


@dataclass(frozen=True)
class TradeTargets:
    """A closed trade's forensic targets, as analytics computed them (None: not derivable)."""

    trade_id: int
    pnl_15m: Decimal | None
    pnl_1h: Decimal | None
    mfe_pct: Decimal | None
    mae_pct: Decimal | None


def marks_record(*, marks: Sequence[TradeMark], at: datetime) -> int:
    """Store each trade's latest mark, bid/ask and unrealized P&L, and widen its running max gain
    and drawdown, in one UPDATE. Returns how many trades were marked.

    A trade that stopped being held since the monitor read it (closed, expired) is left alone.
    Neither `version` nor `updated_at` is touched: a new mark is not a change to the trade. It must
    not turn the trader's pending close into a 409, nor make a close the process left half done look
    fresh every cycle (`last_updated` says when the mark was taken).
    """
    if not marks:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE trades_papertrade AS t
               SET current_price = v.mark, current_bid = v.bid, current_ask = v.ask, unrealized_pnl = v.pnl,
                   last_updated = %s,
                   max_gain = GREATEST(COALESCE(t.max_gain, v.pnl), v.pnl),
                   max_drawdown = LEAST(COALESCE(t.max_drawdown, v.pnl), v.pnl)
              FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[])
                AS v(id, mark, bid, ask, pnl)
             WHERE t.id = v.id AND t.status = ANY(%s)
            """,
            [at, *(array_param([getattr(m, name) for m in marks])  # quoted once (tradeoptions/sqlarrays.py)
                   for name in ("trade_id", "mark", "bid", "ask", "unrealized_pnl")), [str(status) for status in HELD]],
        )
        return cursor.rowcount


def leg_marks_record(*, marks: Sequence[LegMark], at: datetime) -> int:
    """Store each leg's quote this cycle (`marked_at` = `at`, the cycle's time, the same the trade's
    `last_updated` gets when its net is written), in one UPDATE. Returns how many legs were marked.

    A leg whose trade stopped being held since the monitor read it is left alone, as its trade is.
    Called before `marks_record` in the same transaction; a leg is written even when another leg of
    its trade had no quote (its own quote is fresh): the trade's net is then not written, and the
    legs' differing `marked_at` say so (`trades.selectors.legs_marked_together`).
    """
    if not marks:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE trades_tradeleg AS l
               SET bid = v.bid, ask = v.ask, mark = v.mark, iv = v.iv, marked_at = %s
              FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[])
                AS v(id, bid, ask, mark, iv), trades_papertrade AS t
             WHERE l.id = v.id AND t.id = l.trade_id AND t.status = ANY(%s)
            """,
            [at, [m.leg_id for m in marks], [m.bid for m in marks], [m.ask for m in marks],
             [m.mark for m in marks], [m.iv for m in marks], [str(status) for status in HELD]],
        )
        return cursor.rowcount


def targets_record(*, targets: Sequence[TradeTargets]) -> int:
    """Store closed trades' forensic targets on their own rows, in one UPDATE (the ORM's
    `bulk_update` writes a CASE per row, quadratic in the batch). Returns how many were written.

    Running it again with the same figures writes the same values: analytics' nightly job and its
    backfills may overlap. `updated_at` is left as it is, as it was when analytics wrote these
    fields itself: targets are derived data, not a change to the trade.
    """
    if not targets:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE trades_papertrade AS t
               SET target_pnl_15m = v.pnl_15m, target_pnl_1h = v.pnl_1h,
                   target_mfe_pct = v.mfe_pct, target_mae_pct = v.mae_pct
              FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[], %s::numeric[], %s::numeric[])
                AS v(id, pnl_15m, pnl_1h, mfe_pct, mae_pct)
             WHERE t.id = v.id
            """,
            [[t.trade_id for t in targets], [t.pnl_15m for t in targets], [t.pnl_1h for t in targets],
             [t.mfe_pct for t in targets], [t.mae_pct for t in targets]],
        )
        return cursor.rowcount
