"""A trade's parts: each part of its position that left it (`TradeExitPart`), their figures, and
how the API reads them. A closed trade's realized P&L is the sum of its parts, gross and net,
to the cent (docs/pnl.md, "Partial closes"). Selling a part is `parts`; this module only counts.
"""

from __future__ import annotations

from decimal import Decimal

from trades.models import CONTRACT_MULTIPLIER, ExitPartReason, PaperTrade, TradeExitPart, TradeStatus

from .costs import trade_commission_rate

CENT = Decimal("0.01")
SIX_PLACES = Decimal("0.000001")
# A trade with no part being sold (`trades.services.parts` records the sale's steps in these).
PART_SALE_IDLE = {"part_pending_qty": 0, "part_pending_reason": "", "part_order_id": "", "part_started_at": None}


def exit_fills_blend(trade: PaperTrade, *, quantity: int, proceeds: Decimal) -> dict:
    """The changes adding `quantity` contracts sold for `proceeds` (per share: Σ quantity × price)
    to what the trade sold before its close: the count, and the running average price."""
    sold = trade.exit_filled_qty + quantity
    before = trade.exit_filled_price * trade.exit_filled_qty if trade.exit_filled_qty else Decimal(0)
    return {"exit_filled_qty": sold, "exit_filled_price": ((before + proceeds) / sold).quantize(SIX_PLACES)}


def part_figures(trade: PaperTrade, *, quantity: int, proceeds: Decimal) -> dict:
    """A part's P&L: gross = (proceeds − entry × quantity) × 100 (exact: prices have four places),
    its commission (the sell's, at the trade's rate, plus its share of the buy's, pro rata by
    contracts) and net = gross − commission."""
    gross = ((proceeds - trade.entry_price * quantity) * CONTRACT_MULTIPLIER).quantize(CENT)
    bought = trade.filled_qty or trade.qty
    entry_share = (trade.entry_commission * quantity / bought).quantize(CENT) if bought else Decimal(0)
    commission = (trade_commission_rate(trade) * quantity).quantize(CENT) + entry_share
    return {"quantity": quantity, "price": (proceeds / quantity).quantize(SIX_PLACES),
            "pnl_gross": gross, "commission": commission, "pnl_net": gross - commission}


def part_row_create(trade: PaperTrade, *, quantity: int, proceeds: Decimal, at, reason: str,
                    order_id: str = "") -> dict:
    """Write one part's row (in the caller's transaction) and return its figures."""
    figures = part_figures(trade, quantity=quantity, proceeds=proceeds)
    TradeExitPart.objects.create(owner_id=trade.owner_id, trade=trade, filled_at=at, reason=reason,
                                 order_id=order_id or "", **figures)
    return figures


def parts_consistent(trade: PaperTrade) -> list[TradeExitPart] | None:
    """The trade's parts sold before its final exit, when they account for every contract sold
    in parts (`exit_filled_qty`); None for a trade whose earlier partial fills predate parts."""
    parts = list(TradeExitPart.objects.filter(trade_id=trade.pk).exclude(reason=ExitPartReason.FINAL))
    return parts if sum(part.quantity for part in parts) == trade.exit_filled_qty else None


def final_part_record(trade: PaperTrade, *, held: int) -> None:
    """The trade just closed (`trade_transition`): its last part is what it still held, sold at
    the close, carrying what is left of the trade's P&L and costs, so the parts add up to the
    trade exactly. Nothing is written for a trade whose earlier partial fills predate parts (its
    one-part view is derived: `trade_parts`). When nothing was left to sell, the last part sold
    takes the remainder of the costs instead."""
    earlier = parts_consistent(trade)
    if earlier is None or trade.realized_pnl is None:
        return
    gross = trade.realized_pnl - sum((part.pnl_gross for part in earlier), Decimal(0))
    costs = trade.entry_commission + trade.exit_commission + trade.fees
    commission = costs - sum((part.commission for part in earlier), Decimal(0))
    if held <= 0:
        if earlier:
            last = earlier[-1]
            TradeExitPart.objects.filter(pk=last.pk).update(
                commission=last.commission + commission, pnl_gross=last.pnl_gross + gross,
                pnl_net=last.pnl_net + gross - commission)
        return
    price = trade.close_price if not earlier else (
        trade.entry_price + gross / (held * CONTRACT_MULTIPLIER)).quantize(SIX_PLACES)
    TradeExitPart.objects.create(
        owner_id=trade.owner_id, trade=trade, quantity=held, price=price, filled_at=trade.close_date,
        reason=ExitPartReason.FINAL, order_id=trade.close_order_id or "", commission=commission, pnl_gross=gross,
        pnl_net=gross - commission)


def trade_parts(trade: PaperTrade, parts: list[TradeExitPart] | None = None) -> list[dict]:
    """A trade's parts for the API: its rows, or for a trade closed before parts existed (or with
    partial fills that predate them) one part derived from the trade itself."""
    if parts is None:
        parts = list(trade.exit_parts.all())
    if parts and (trade.status != TradeStatus.CLOSED or any(p.reason == ExitPartReason.FINAL for p in parts)
                  or sum(p.quantity for p in parts) == (trade.filled_qty or trade.qty)):
        return [{"quantity": p.quantity, "price": p.price, "at": p.filled_at, "reason": p.reason,
                 "commission": p.commission, "pnl_gross": p.pnl_gross, "pnl_net": p.pnl_net} for p in parts]
    if trade.status != TradeStatus.CLOSED or trade.realized_pnl is None:
        return []
    commission = trade.commission_total + trade.fees
    return [{"quantity": trade.filled_qty or trade.qty, "price": trade.close_price, "at": trade.close_date,
             "reason": ExitPartReason.FINAL, "commission": commission, "pnl_gross": trade.realized_pnl,
             "pnl_net": trade.realized_pnl - commission}]


def quantity_history(trade: PaperTrade, parts: list[dict]) -> list[dict]:
    """The contracts held after each change: the entry, then each part."""
    if trade.entry_date is None:
        return []
    held = trade.filled_qty or trade.qty
    history = [{"at": trade.entry_date, "change": held, "quantity_open": held, "reason": "ENTRY"}]
    for part in parts:
        held -= part["quantity"]
        history.append({"at": part["at"], "change": -part["quantity"], "quantity_open": held,
                        "reason": part["reason"]})
    return history
