"""What a broker account holds, held against the trades: a contract held short.

This system only buys options to open and sells them to close, so a negative quantity at the
broker always means something sold twice (an exit and a close both filled, or an order placed by
hand). It is never "fixed" automatically: buying back is a trading decision. The trade is
flagged, the page shows it in red, and the trader's webhook hears of it, once per quantity seen.
"""

from __future__ import annotations

from trades.models import PaperTrade

from . import notifications
from .lifecycle import trade_flag


def oversold_reason(symbol: str, short_qty: int) -> str:
    return (f"OVERSOLD: the broker account holds {short_qty} {symbol} short (more was sold than held). "
            f"Buy {short_qty} to close at the broker.")[:255]


def trade_oversold_flag(*, trade: PaperTrade, short_qty: int, actor: str, actor_label: str = "") -> PaperTrade | None:
    """Flag `trade`: its contract is held `short_qty` short at the broker. None when the trade
    already says so (the monitor sees the same position every cycle; the trader hears once)."""
    if short_qty <= 0 or trade.oversold_qty == short_qty:
        return None
    trade = trade_flag(
        trade_id=trade.pk, changes={"attention_reason": oversold_reason(trade.option_symbol, short_qty),
                                    "oversold_qty": short_qty},
        payload={"oversold": {"symbol": trade.option_symbol, "short_qty": short_qty}},
        actor=actor, actor_label=actor_label,
    )
    notifications.trade_oversold_announce(trade=trade, short_qty=short_qty)
    return trade
