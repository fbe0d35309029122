"""A trade's legs (TradeLeg): written with the trade, and kept in step with its fills.

Every trade has legs; a single option is the one-leg case (LONG, ratio 1). `trade_open` writes
that leg in the transaction that writes the trade, so no trade is ever seen without legs. A
single option's entry and exit are filled and recorded on the trade row by `trade_transition`
(the one gate for a trade's state); it hands the fill prices here, in its own transaction, so
the leg's per-leg fills always equal the trade's. A multi-leg trade's per-leg fills are the
multi-leg services' to write (they differ per leg); nothing here touches them.
"""

from __future__ import annotations

from trades.models import PaperTrade, StrategyType, TradeLeg

# What a transition's `changes` may carry that a single option's leg mirrors: trade field -> leg field.
SINGLE_LEG_FILLS = {"entry_price": "entry_price", "close_price": "exit_price"}


def single_leg_write(*, trade: PaperTrade) -> TradeLeg:
    """Write the one leg of a single-option trade (in the caller's transaction and tenant context)."""
    leg = TradeLeg.single_of(trade)
    leg.save(force_insert=True)
    return leg


def single_leg_fills_follow(*, trade: PaperTrade, changes: dict) -> int:
    """Copy the fill prices a transition just wrote on a single-option trade to its leg. Returns
    the legs updated (0 for a multi-leg trade, or a change without a fill price)."""
    fills = {leg_field: changes[trade_field] for trade_field, leg_field in SINGLE_LEG_FILLS.items()
             if trade_field in changes}
    if not fills or trade.strategy_type != StrategyType.SINGLE:
        return 0
    return TradeLeg.objects.filter(trade_id=trade.pk).update(**fills)
