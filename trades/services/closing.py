"""Closing a trade by hand: one sell order however many devices press the button.

The client sends the version it saw. The OPEN → CLOSING transition is a conditional update on
that version under the row lock, held until the request's transaction ends: of two parallel
closes the second waits, then finds a newer version and is refused with the current trade.
Only then does anything go to the broker: a market sell-to-close, then at once the cancel of
the SL/TP bracket (the sell goes first so the position is never without an exit order). The
trade becomes CLOSED with MANUAL_CLOSE when the sell's fill is confirmed; until then it stays
CLOSING and the monitor confirms the fill later.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from brokers.base import BrokerError, BrokerProvider, Order, OrderStatus
from brokers.market import Market, default_market
from tradeoptions import tenancy
from tradeoptions.logs import about_trade
from trades.models import CONTRACT_MULTIPLIER, Actor, CloseReason, EventKind, PaperTrade, TradeStatus

from .accounts import account_settings_for
from .errors import VersionConflict
from .lifecycle import event_record, trade_transition
from .opening import TradeResult
from .orders import as_trade_error, broker_of, close_request, order_summary, was_not_placed

CENT = Decimal("0.01")


def close_outcome(trade: PaperTrade, *, price: Decimal, at: datetime, reason: str) -> dict:
    """The outcome fields of a trade closed at `price` per share: P&L in dollars (premiums only,
    before commissions), percent of the entry premium, hours held."""
    quantity = trade.held_qty
    pnl = (price - trade.entry_price) * quantity * CONTRACT_MULTIPLIER
    hours = Decimal((at - trade.entry_date).total_seconds()) / 3600 if trade.entry_date else None
    return {
        "close_price": price,
        "close_date": at,
        "close_reason": reason,
        "realized_pnl": pnl.quantize(CENT),
        "realized_pnl_pct": ((price - trade.entry_price) * 100 / trade.entry_price).quantize(Decimal("0.0001"))
        if trade.entry_price else None,
        "hold_duration_h": hours.quantize(CENT) if hours is not None else None,
        "unrealized_pnl": None,
    }


def conflict_refused(*, trade: PaperTrade, error: VersionConflict, user: AbstractBaseUser, action: str,
                     sent_version: int) -> TradeResult:
    """Write the refusal to the audit log and hand the current trade back."""
    current = error.trade
    event_record(
        trade=current, kind=EventKind.CONFLICT_REFUSED, actor=Actor.USER, actor_user=user, actor_label=action,
        old_status=current.status, new_status=current.status,
        payload={"action": action, "sent_version": sent_version, "current_version": current.version},
    )
    return TradeResult(current, error)


def trade_close(
    *, user: AbstractBaseUser, trade_id: int, version: int, market: Market | None = None
) -> TradeResult:
    """Close an OPEN trade at market. Raises PaperTrade.DoesNotExist (another user's trade is
    missing too), InvalidTransition, or a broker configuration error before anything changes."""
    market = market or default_market()
    who = {"actor": Actor.USER, "actor_user": user, "actor_label": "close"}
    with about_trade(trade_id):
        return _close(user=user, trade_id=trade_id, version=version, market=market, who=who)


def _close(*, user: AbstractBaseUser, trade_id: int, version: int, market: Market, who: dict) -> TradeResult:
    with tenancy.acting_as(user.pk):
        trade = PaperTrade.objects.get(owner=user, pk=trade_id)
        broker = broker_of(account_settings_for(user=user), mode=trade.broker_mode, market=market)
        try:
            trade = trade_transition(trade_id=trade.pk, to=TradeStatus.CLOSING, expected_version=version, **who)
        except VersionConflict as error:
            return conflict_refused(trade=trade, error=error, user=user, action="close", sent_version=version)
    # CLOSING has committed (unless the caller holds a transaction open): a second close is refused
    # from here on without waiting, and the sell below always has a trade that expects it.
    with tenancy.acting_as(user.pk):
        try:
            sell = broker.place_order(close_request(trade))
        except BrokerError as error:
            return _sell_failed(trade, error, who)
        canceled = bracket_cancel(trade=trade, broker=broker, **who)
        changes = {"close_order_id": sell.id}
        if not canceled:
            changes["attention_reason"] = "The SL/TP bracket could not be cancelled: cancel it at the broker."
        return TradeResult(close_confirm(trade_id=trade.pk, sell=sell, changes=changes, **who))


def close_confirm(*, trade_id: int, sell: Order, changes: dict | None = None, **who) -> PaperTrade:
    """Record the state of a CLOSING trade's sell order: filled → CLOSED with MANUAL_CLOSE at the
    fill price; still working → stays CLOSING. (The monitor calls this when the fill arrives.)"""
    changes = dict(changes or {})
    payload = {"order": order_summary(sell)}
    if sell.status == OrderStatus.FILLED and sell.fill is not None:
        trade = PaperTrade.objects.get(pk=trade_id)
        changes.update(close_outcome(trade, price=sell.fill.price, at=sell.fill.at or timezone.now(),
                                     reason=CloseReason.MANUAL_CLOSE))
        return trade_transition(trade_id=trade_id, to=TradeStatus.CLOSED, kind=EventKind.ORDER_FILLED,
                                changes=changes, payload=payload, **who)
    if sell.status.is_final:  # refused, cancelled or expired unfilled: the position is still held
        changes["status_reason"] = f"The close order was {sell.status.value}: {sell.reason or ''}".strip()[:255]
        return trade_transition(trade_id=trade_id, to=TradeStatus.OPEN, kind=EventKind.ORDER_CANCELED,
                                changes=changes, payload=payload, **who)
    return trade_transition(trade_id=trade_id, to=TradeStatus.CLOSING, kind=EventKind.ORDER_PLACED,
                            changes=changes, payload=payload, **who)


def _sell_failed(trade: PaperTrade, error: BrokerError, who: dict) -> TradeResult:
    problem = as_trade_error(error, trade=trade)
    if was_not_placed(error):  # nothing was sent: the trade is OPEN again, its bracket untouched
        trade = trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ORDER_REJECTED,
                                 changes={"status_reason": problem.message[:255]}, payload={"error": problem.code},
                                 **who)
    else:
        trade = trade_transition(
            trade_id=trade.pk, to=TradeStatus.CLOSING, kind=EventKind.ATTENTION_NEEDED,
            changes={"attention_reason": f"Close order outcome unknown, reconcile by its tag: {error}"[:255]},
            payload={"error": problem.code}, **who,
        )
    problem.trade = trade
    return TradeResult(trade, problem)


def bracket_order_ids(trade: PaperTrade) -> list[str]:
    if trade.bracket_order_id:
        return [trade.bracket_order_id]
    return [order_id for order_id in (trade.sl_order_id, trade.tp_order_id) if order_id]


def bracket_cancel(*, trade: PaperTrade, broker: BrokerProvider, **who) -> list[Order] | None:
    """Cancel the trade's SL/TP orders; the orders as they stand afterwards, or None if the broker
    failed (they may still be working). Each outcome goes to the audit log."""
    results = []
    for order_id in bracket_order_ids(trade):
        try:
            order = broker.cancel_order(order_id)
        except BrokerError as error:
            event_record(trade=trade, kind=EventKind.ATTENTION_NEEDED, old_status=trade.status,
                         new_status=trade.status, payload={"cancel_failed": order_id, "error": str(error)}, **who)
            return None
        event_record(trade=trade, kind=EventKind.ORDER_CANCELED, old_status=trade.status, new_status=trade.status,
                     payload={"order": order_summary(order)}, **who)
        results.append(order)
    return results


def bracket_filled(orders: list[Order]) -> bool:
    """Did an exit leg fill before the cancel arrived? (An OTOCO's filled entry does not count.)"""
    for order in orders:
        exits = [leg for leg in order.legs if leg.side is None or not leg.side.is_buy] if order.legs else [order]
        if any(leg.status == OrderStatus.FILLED or leg.filled_quantity for leg in exits):
            return True
    return False
