"""What a broker account holds, held against the trades: a contract held short.

This system only buys options to open and sells them to close, so a negative quantity at the
broker always means something sold twice (an exit and a close both filled, or an order placed by
hand). It is never "fixed" automatically: buying back is a trading decision. The trade is
flagged, the page shows it in red, and the trader's webhook hears of it, once per quantity seen.
Once the account no longer holds the contract short (the trader bought it back), the monitor
clears the flag itself: a red banner that outlives the problem teaches traders to ignore it.
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


def trade_oversold_clear(*, trade: PaperTrade, actor: str, actor_label: str = "") -> PaperTrade | None:
    """The broker account no longer holds `trade`'s contract short: clear the flag (and the
    attention note it wrote, not a note of something else). None when there was nothing to clear."""
    if not trade.oversold_qty:
        return None
    changes = {"oversold_qty": 0}
    if trade.attention_reason.startswith("OVERSOLD"):
        changes["attention_reason"] = ""
    return trade_flag(trade_id=trade.pk, changes=changes, actor=actor, actor_label=actor_label,
                      payload={"oversold_covered": {"symbol": trade.option_symbol, "was_short": trade.oversold_qty}})
