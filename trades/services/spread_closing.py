"""Closing a multi-leg trade: one multileg order, every leg reversed, and its fill on every leg.

A spread has no bracket at the broker (docs/spreads.md, "The lifecycle of a spread trade"): the
monitor watches its held mark and, when the stop or the target is crossed, or a trader closes it
(`POST /api/trades/{id}/close`), the close goes through `closing._close` like a single option's:
OPEN → CLOSING under the trade's version, then, under the trade's close lease, the steps here.

1. The closing order may already exist: a close whose answer was lost left it at the broker under
   its tag `to-<id>-close`. It is looked up first and adopted if it works or any leg of it filled,
   so a close is never sent twice (a second one would open the reverse position).
2. Otherwise one multileg order: each LONG leg sold to close, each SHORT bought to close, `ratio ×
   units` contracts each, at **market**. A stop must get out: a limit on the net can rest unfilled
   while the loss grows, and nothing else protects a spread (the monitor is its bracket). The
   local paper broker and Tradier fill each leg at its natural side.
3. Filled (now, or on a later cycle: the order sync hands the order to `spread_close_confirm`):
   each leg's `exit_price` and `exit_reason` CLOSED, the trade's `close_price` (held net of the leg
   fills, `net_price.held_price`), realized P&L = Σ legs side × ratio × (exit − entry) × units ×
   100 exactly, the exit commission (per contract per leg), CLOSED through `trade_transition` (which
   announces it as any close). Still working → CLOSING. Refused, or ended unfilled → OPEN, told in
   the trader's words; the monitor asks again next cycle while the stop or target is crossed.
   Not known → CLOSING, and the monitor's sync finds it by its tag or finishes the close.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from brokers.base import (
    BrokerError,
    BrokerProvider,
    Order,
    OrderDuration,
    OrderPurpose,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    SpreadLeg,
    SpreadOrderRequest,
    SpreadPriceType,
)
from trades.models import (
    CONTRACT_MULTIPLIER,
    CloseReason,
    EventKind,
    LegExit,
    LegSide,
    PaperTrade,
    StrategyType,
    TradeLeg,
    TradeStatus,
)
from trades.net_price import held_price

from .costs import spread_exit_costs
from .errors import InvalidTradeInput
from .lifecycle import trade_transition
from .opening import TradeResult
from .orders import as_trade_error, order_summary, trade_order_tag, was_not_placed

CENT = Decimal("0.01")
# A close request that leaves the trade CLOSING is done with it (closing.REQUEST_ENDED says the same).
REQUEST_ENDED = {"close_in_flight_since": None}
CLOSING_SIDE = {LegSide.LONG: OrderSide.SELL_TO_CLOSE, LegSide.SHORT: OrderSide.BUY_TO_CLOSE}
SPREAD_CLOSES_WHOLE = "A spread closes whole in this release: leave the number of contracts out to close all of it."


def is_multi_leg(trade: PaperTrade) -> bool:
    return trade.strategy_type != StrategyType.SINGLE


def spread_close_quantity_check(trade: PaperTrade, quantity: int | None) -> None:
    """A spread closes all its units or none: a smaller `quantity` is a field-level refusal."""
    if quantity is not None and is_multi_leg(trade) and quantity != trade.held_qty:
        raise InvalidTradeInput({"quantity": [f"{SPREAD_CLOSES_WHOLE} This spread holds {trade.held_qty} "
                                              f"unit{'s' if trade.held_qty != 1 else ''}."]})


def legs_of(trade: PaperTrade) -> list[TradeLeg]:
    """The legs a closing order reverses: those still held (a calendar's settled front month is not)."""
    return list(TradeLeg.objects.filter(trade_id=trade.pk, exit_reason="").order_by("position"))


def settled_legs_of(trade: PaperTrade) -> list[TradeLeg]:
    """The legs that have left the position (settled at expiry before the close; they count at their
    exit prices in the close's net and P&L)."""
    return list(TradeLeg.objects.filter(trade_id=trade.pk).exclude(exit_reason="").order_by("position"))


def spread_close_request(trade: PaperTrade, legs: list[TradeLeg]) -> SpreadOrderRequest:
    """Every leg reversed for the units held, at market (the module docstring says why), for the day."""
    return SpreadOrderRequest(
        underlying=trade.ticker, price_type=SpreadPriceType.MARKET, duration=OrderDuration.DAY,
        tag=trade_order_tag(trade, OrderPurpose.CLOSE),
        legs=tuple(SpreadLeg(leg.option_symbol, CLOSING_SIDE[leg.side], leg.ratio * trade.held_qty) for leg in legs))


def _place_close(broker: BrokerProvider, trade: PaperTrade, legs: list[TradeLeg]) -> Order:
    """The closing order: one multileg order, or, when one leg is left (a calendar whose front month
    settled), a single-option order at market under the same tag (a multileg order has 2–4 legs)."""
    if len(legs) > 1:
        return broker.place_spread_order(spread_close_request(trade, legs))
    (leg,) = legs
    return broker.place_order(OrderRequest(
        option_symbol=leg.option_symbol, side=CLOSING_SIDE[leg.side], quantity=leg.ratio * trade.held_qty,
        order_type=OrderType.MARKET, tag=trade_order_tag(trade, OrderPurpose.CLOSE), underlying=trade.ticker))


def _with_legs(order: Order) -> Order:
    """A single-option closing order read as a spread order of its one leg."""
    if order.legs or not order.option_symbol:
        return order
    return replace(order, legs=(order,))


def spread_close_steps(*, trade: PaperTrade, broker: BrokerProvider, who: dict) -> TradeResult:
    """Steps 1-3 (the module docstring) for a CLOSING multi-leg trade; the caller holds its lease."""
    tag = trade_order_tag(trade, OrderPurpose.CLOSE)
    try:
        found = broker.find_order_by_tag(tag)
    except BrokerError as error:  # not knowing whether a close is out there, nothing may be sent
        trade = trade_transition(
            trade_id=trade.pk, to=TradeStatus.CLOSING, kind=EventKind.ATTENTION_NEEDED,
            changes={"attention_reason": "The broker could not say whether the spread's closing order is already "
                                         "there; nothing was sent, the monitor asks again.", **REQUEST_ENDED},
            payload={"error": str(error)[:200]}, **who)
        return TradeResult(trade, as_trade_error(error, trade=trade))
    if found is not None and (found.status.is_working or _any_leg_filled(found)):  # it is the close: never a second
        return TradeResult(spread_close_confirm(trade_id=trade.pk, order=found, changes={"close_order_id": found.id},
                                                **who))
    try:
        order = _place_close(broker, trade, legs_of(trade))
    except BrokerError as error:
        return _placement_failed(trade, error, who)
    return TradeResult(spread_close_confirm(trade_id=trade.pk, order=order, changes={"close_order_id": order.id},
                                            **who))


def _placement_failed(trade: PaperTrade, error: BrokerError, who: dict) -> TradeResult:
    problem = as_trade_error(error, trade=trade)
    if was_not_placed(error):  # nothing at the broker: the spread is held as before
        trade = trade_transition(
            trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ORDER_REJECTED,
            changes={"close_order_id": "", "status_reason": f"The closing order was refused: {problem.message}"[:255],
                     "attention_reason": _still_held(problem.message)}, payload={"error": problem.code}, **who)
    else:
        trade = trade_transition(
            trade_id=trade.pk, to=TradeStatus.CLOSING, kind=EventKind.ATTENTION_NEEDED,
            changes={"attention_reason": f"The spread's closing order may be at the broker; it is looked up by its "
                                         f"tag before anything is sent again: {error}"[:255], **REQUEST_ENDED},
            payload={"error": problem.code}, **who)
    problem.trade = trade
    return TradeResult(trade, problem)


def _still_held(why: str) -> str:
    return (f"The spread could not be closed ({why}); every leg is still held. While its stop or target is "
            "crossed the monitor tries again after a minute, then less often; you can close it again now.")[:255]


def _filled(order: Order) -> bool:
    """Every leg filled in full (the parent's own fill may be missing: Tradier documents none)."""
    return order.status == OrderStatus.FILLED and bool(order.legs) and all(
        leg.fill is not None and leg.filled_quantity >= (leg.quantity or 0) for leg in order.legs)


def _any_leg_filled(order: Order) -> bool:
    """Some leg filled: a multileg order's own legs, or a single-option close (a calendar's last leg)."""
    return any(leg.filled_quantity for leg in _with_legs(order).legs)


def spread_close_confirm(*, trade_id: int, order: Order, changes: dict | None = None, **who) -> PaperTrade:
    """Record the state of a multi-leg trade's closing order (see the module docstring, step 3)."""
    changes = dict(changes or {})
    payload = {"order": order_summary(order)}
    order = _with_legs(order)
    trade = PaperTrade.objects.get(pk=trade_id)
    if _filled(order):
        with transaction.atomic():
            fills, settled = _leg_fills(trade, order), settled_legs_of(trade)
            for leg, price in fills:
                TradeLeg.objects.filter(pk=leg.pk).update(exit_price=price, exit_reason=LegExit.CLOSED)
            changes.update(spread_close_outcome(trade, fills=fills, settled=settled, at=_filled_at(order),
                                                reason=trade.exit_request_reason or CloseReason.MANUAL_CLOSE))
            payload["leg_fills"] = {leg.option_symbol: format(price, "f") for leg, price in fills}
            return trade_transition(trade_id=trade_id, to=TradeStatus.CLOSED, kind=EventKind.ORDER_FILLED,
                                    changes=changes, payload=payload, **who)
    if order.status.is_final and _any_leg_filled(order):  # a broken spread: only a person can sort it out
        reason = ("The closing order ended with only some legs filled: the spread is broken at the broker. "
                  "Check the positions there; nothing more is sent.")
        if trade.attention_reason == reason and trade.close_order_id == order.id:
            return trade
        return trade_transition(trade_id=trade_id, to=TradeStatus.CLOSING, kind=EventKind.ATTENTION_NEEDED,
                                changes={**changes, "attention_reason": reason, **REQUEST_ENDED}, payload=payload,
                                **who)
    if order.status.is_final:  # refused on a later look, cancelled or expired unfilled: still held
        why = f"the closing order was {order.status.value}{': ' + order.reason if order.reason else ''}"
        changes.update(close_order_id="", status_reason=why[:255], attention_reason=_still_held(why))
        return trade_transition(trade_id=trade_id, to=TradeStatus.OPEN, kind=EventKind.ORDER_CANCELED,
                                changes=changes, payload=payload, **who)
    return trade_transition(trade_id=trade_id, to=TradeStatus.CLOSING, kind=EventKind.ORDER_PLACED,
                            changes={**changes, **REQUEST_ENDED}, payload=payload, **who)


def _leg_fills(trade: PaperTrade, order: Order) -> list[tuple[TradeLeg, Decimal]]:
    by_symbol = {leg.option_symbol: leg for leg in order.legs}
    return [(leg, by_symbol[leg.option_symbol].fill.price) for leg in legs_of(trade)]


def _filled_at(order: Order):
    times = [leg.fill.at for leg in order.legs if leg.fill is not None and leg.fill.at is not None]
    return max(times) if times else (order.fill.at if order.fill and order.fill.at else timezone.now())


def spread_close_outcome(trade: PaperTrade, *, fills: list[tuple[TradeLeg, Decimal]], at, reason: str,
                         settled: list[TradeLeg] = ()) -> dict:
    """The outcome fields of a spread closed at `fills` (each leg with its exit fill, per share):
    (and `settled`, the legs that left at expiry before, each at its exit price) the held close
    price, realized P&L (premiums only: Σ legs side × ratio × (exit − entry) × units
    × 100, exact), its percent of the entry premium, hours held, the exit's commission."""
    units = trade.held_qty
    every_leg = [*fills, *((leg, leg.exit_price) for leg in settled)]  # a settled front month counts too
    net = sum((leg.sign * leg.ratio * price for leg, price in every_leg), Decimal(0))
    pnl = sum((leg.sign * leg.ratio * (price - leg.entry_price) for leg, price in every_leg), Decimal(0))
    pnl = pnl * units * CONTRACT_MULTIPLIER
    basis = trade.entry_price * units * CONTRACT_MULTIPLIER if trade.entry_price else None
    hours = Decimal((at - trade.entry_date).total_seconds()) / 3600 if trade.entry_date else None
    return {
        # Not cut at 0: a calendar's back month sold after its front was assigned can net less than
        # the assignment cost (the underlying moved between), a real loss the P&L counts too.
        "close_price": held_price(trade.net_direction, net),
        "close_date": at,
        "close_reason": reason,
        "realized_pnl": pnl.quantize(CENT),
        "realized_pnl_pct": (pnl * 100 / basis).quantize(Decimal("0.0001")) if basis else None,
        "hold_duration_h": hours.quantize(CENT) if hours is not None else None,
        "unrealized_pnl": None,
        "attention_reason": "",  # a refused attempt before this fill is over
        **spread_exit_costs(trade, contracts=units * sum(leg.ratio for leg, _ in fills)),
    }
