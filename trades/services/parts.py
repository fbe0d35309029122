"""Selling part of a position: a scale-out (the exit policy's first target) or a manual partial
close. Each part sold is a `TradeExitPart`, and a closed trade's P&L is the sum of its parts.

The bracket (one OCO for every contract held) cannot change its quantity in place, so a part
sale is, in order, each step recorded on the trade before the next (docs/reliability.md):

1. OPEN stays OPEN with `part_pending_qty` (and why) set, a conditional update on the version
   the caller saw: a second sale, a close, an adjust or a stop move is refused meanwhile.
2. Under the trade's order lease, the bracket is cancelled and each leg's end read
   (`bracket_withdraw`). A leg that filled first is the trade's close (nothing else is sold);
   partial fills are recorded as parts.
3. The sell-to-close of the part goes (market, tag `to-<id>-part<n>`, n the sale's number, so no
   two sales' sells share a tag); its id is stored.
4. The rest is protected again: a new OCO for the contracts held less the part being sold. The
   sell and the OCO together never cover more than is held, so nothing is ever sold twice; the
   position is without an exit from the cancel's answer to the new OCO (two round trips).
5. The sell's fill is recorded as a part (`part_sale_confirm`), at once if it filled on arrival
   (the local paper broker), else when the monitor sees it.

A sale the process left between two steps is finished by the monitor (`part_sale_resume`): with
the sell's id it confirms the sell and protects the rest; without it, it looks for the sell by its
sale's tag (an order that ended unfilled is no sale's sell), and only when none was placed (and
the request is certainly over) repeats steps 2-5, which are safe to repeat. A sell refused
outright puts the whole bracket back; a sell that ended unfilled has its bracket re-placed for
everything held; either way a scale-out that sold nothing may fire again. A sell reported sold
without its price stays pending until the broker gives the price; one the broker cannot show
for SELL_UNREADABLE_LOOKS looks is given up (the bracket for everything held, the trader told).
A part's row and the trade's change are written in one transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
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
)
from brokers.market import Market, default_market
from tradeoptions import tenancy
from tradeoptions.logs import about_trade
from trades.models import Actor, EventKind, ExitPartReason, PaperTrade, TradeEvent, TradeExitPart, TradeStatus

from .accounts import account_settings_for
from .alerts import daily_loss_limit_check
from .closing import (
    bracket_restore,
    bracket_withdraw,
    conflict_refused,
    exit_fill_close,
    exit_fills_record,
    sold_in_parts_close,
    trade_close,
    trade_order_lease,
)
from .errors import BrokerDown, InvalidTradeInput, InvalidTransition, PositionUnprotected, VersionConflict
from .exit_parts import PART_SALE_IDLE, exit_fills_blend, part_row_create
from .lifecycle import trade_transition
from .opening import TradeResult
from .orders import (
    as_trade_error,
    bracket_ids,
    broker_of,
    exit_requests,
    order_summary,
    place_bracket,
    trade_order_tag,
    was_not_placed,
)
from .spread_closing import spread_close_quantity_check

CENT = Decimal("0.01")
# A sale with no sell recorded is repeated by the monitor only once no request can be at work on it.
PART_SALE_STALE = timedelta(minutes=2)
POLICY = {"actor": Actor.SYSTEM, "actor_label": "exit-policy"}
NO_BRACKET = {"bracket_order_id": "", "sl_order_id": "", "tp_order_id": ""}


# --- Recording a part -------------------------------------------------------------------------


def part_record(*, trade: PaperTrade, quantity: int, proceeds: Decimal, at: datetime, reason: str,
                order: Order | None = None, changes: dict | None = None, **who) -> PaperTrade:
    """Record `quantity` contracts sold for `proceeds` (per share: Σ quantity × price) as a part:
    the trade holds that much less (`exit_filled_qty`, whose average price its close blends in)
    and the part's row and event are written, in one transaction."""
    with transaction.atomic():  # the trade's change and the part's row, or neither
        trade = trade_transition(
            trade_id=trade.pk, to=trade.status, kind=EventKind.ORDER_FILLED, expected_version=trade.version,
            changes={**exit_fills_blend(trade, quantity=quantity, proceeds=proceeds), **(changes or {})},
            payload={"part": {"quantity": quantity, "proceeds_per_share": proceeds, "reason": reason, "at": at},
                     **({"order": order_summary(order)} if order is not None else {})}, **who)
        figures = part_row_create(trade, quantity=quantity, proceeds=proceeds, at=at, reason=reason,
                                  order_id=order.id if order is not None else "")
        if figures["pnl_net"] < 0:  # a loss: the day's may have reached the limit
            daily_loss_limit_check(owner_id=trade.owner_id, at=at)
    return trade


# --- Selling a part -----------------------------------------------------------------------------


def part_tag(trade: PaperTrade) -> str:
    """`to-<id>-part<n>`, n the number of the sale under way (its step 1's event): each sale's
    sell has its own tag, so an earlier sale's sell is never taken for this one's (nor found by
    the broker's retry of a placement that timed out)."""
    sale = TradeEvent.objects.filter(trade_id=trade.pk, payload__part_sale__has_key="quantity").count()
    return f"{trade_order_tag(trade, OrderPurpose.PART)}{sale}"


def part_request(trade: PaperTrade, *, quantity: int) -> OrderRequest:
    """The part's sell-to-close, at market, for the day."""
    return OrderRequest(option_symbol=trade.option_symbol, side=OrderSide.SELL_TO_CLOSE, quantity=quantity,
                        order_type=OrderType.MARKET, tag=part_tag(trade), duration=OrderDuration.DAY)


def _sale_over(trade: PaperTrade) -> dict:
    """The changes ending a sale that sold nothing: a scale-out that did not happen may fire again."""
    return {**PART_SALE_IDLE, **({"exit_scaled_out_at": None}
                                 if trade.part_pending_reason == ExitPartReason.SCALE_OUT else {})}


def part_quantity_check(trade: PaperTrade, quantity: int) -> None:
    """A part is at least one contract and fewer than are held (all of them is a close)."""
    held = trade.held_qty
    if quantity < 1:
        raise InvalidTradeInput({"quantity": ["Sell at least 1 contract."]})
    if quantity >= held:
        raise InvalidTradeInput({"quantity": [
            f"The position holds {held} contract{'s' if held != 1 else ''}: a partial close sells fewer "
            "(close the trade to sell them all)."]})


def trade_part_sell(*, user: AbstractBaseUser, trade_id: int, version: int, quantity: int, reason: str,
                    because: dict | None = None, market: Market | None = None) -> TradeResult:
    """Sell `quantity` of an OPEN trade's contracts, the rest staying under a bracket for what is
    left (the module's steps). `because`: the exit policy's scale-out (the system is the actor and
    the event carries the policy and the quote); else the trader's partial close.
    Raises InvalidTradeInput (`quantity`), InvalidTransition, DoesNotExist."""
    market = market or default_market()
    who = POLICY if because is not None else {"actor": Actor.USER, "actor_user": user, "actor_label": "close"}
    with about_trade(trade_id), tenancy.acting_as(user.pk):
        trade = PaperTrade.objects.get(owner=user, pk=trade_id)
        if trade.version == version:
            if trade.status != TradeStatus.OPEN:
                raise InvalidTransition(f"Only an open trade can be closed in part; this one is "
                                        f"{TradeStatus(trade.status).label.lower()}.", trade=trade)
            if trade.part_pending_qty:
                raise InvalidTransition("A part of this position is being sold already: try again in a moment.",
                                        trade=trade)
            part_quantity_check(trade, quantity)
        broker = broker_of(account_settings_for(user=user), mode=trade.broker_mode, market=market)
        now = market.now()
        try:
            trade = trade_transition(
                trade_id=trade.pk, to=TradeStatus.OPEN, expected_version=version,
                changes={"part_pending_qty": quantity, "part_pending_reason": reason, "part_order_id": "",
                         "part_started_at": now,
                         **({"exit_scaled_out_at": now} if reason == ExitPartReason.SCALE_OUT else {})},
                payload={"part_sale": {"quantity": quantity, "reason": reason},
                         **({"exit_policy": because} if because is not None else {})}, **who)
        except VersionConflict as error:
            return conflict_refused(trade=trade, error=error, user=user, action="close", sent_version=version,
                                    who=who)
    # Committed: from here the monitor can finish the sale should this process stop.
    with about_trade(trade_id), tenancy.acting_as(user.pk):
        return part_sale_at_broker(trade=trade, broker=broker, **who)


def trade_close_some(*, user: AbstractBaseUser, trade_id: int, version: int, quantity: int | None,
                     market: Market | None = None) -> TradeResult:
    """The trader's close: of every contract (no `quantity`, or all of them), else of a part."""
    if quantity is not None:
        with tenancy.acting_as(user.pk):
            trade = PaperTrade.objects.get(owner=user, pk=trade_id)
        spread_close_quantity_check(trade, quantity)
        # Not yet holding (an entry still working): every contract asked for is the whole close.
        held = trade.held_qty if trade.status == TradeStatus.OPEN else trade.qty
    if quantity is None or quantity == held:
        return trade_close(user=user, trade_id=trade_id, version=version, market=market)
    return trade_part_sell(user=user, trade_id=trade_id, version=version, quantity=quantity,
                           reason=ExitPartReason.PARTIAL_CLOSE, market=market)


def part_sale_at_broker(*, trade: PaperTrade, broker: BrokerProvider, **who) -> TradeResult:
    """Steps 2-5 under the trade's order lease (another request holding it finishes instead)."""
    with trade_order_lease(trade.pk) as ours:
        if not ours:
            return TradeResult(trade)
        return _part_steps(trade=trade, broker=broker, who=who)


def _part_steps(*, trade: PaperTrade, broker: BrokerProvider, who: dict) -> TradeResult:
    if trade.bracket_order_id or trade.sl_order_id or trade.tp_order_id:
        withdrawn = bracket_withdraw(trade=trade, broker=broker, **who)
        if withdrawn is None:  # the bracket works on: selling beside it could sell twice
            trade = trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ORDER_REJECTED,
                                     changes={**_sale_over(trade), "status_reason": "The bracket could not be "
                                              "cancelled; no part was sold."}, **who)
            return TradeResult(trade, BrokerDown("The broker could not cancel the SL/TP bracket, so no part was "
                                                 "sold: try again.", trade=trade))
        if not withdrawn.known or not withdrawn.final:  # the monitor finishes once the broker says
            return TradeResult(trade, BrokerDown("The broker has not confirmed the bracket's cancel: the part is "
                                                 "sold once it has.", trade=trade))
        if withdrawn.exit_fill is not None:  # the bracket sold first: that is the trade's close
            trade = exit_fill_close(trade=trade, exit_fill=withdrawn.exit_fill, **who)
            return TradeResult(trade, InvalidTransition(
                "A bracket leg filled before the partial sale: the trade is closed at that fill.", trade=trade))
        trade = exit_fills_record(trade=trade, withdrawn=withdrawn, **who)
        if trade.held_qty > 0 and (trade.bracket_order_id or trade.sl_order_id or trade.tp_order_id):
            trade = trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, changes=NO_BRACKET,  # it is over
                                     payload={"part_sale": "bracket withdrawn"}, **who)
        if trade.held_qty <= 0:  # the legs sold everything in partial fills: that is the close
            return TradeResult(sold_in_parts_close(trade=trade, withdrawn=withdrawn, **who))
    held = trade.held_qty
    quantity = min(trade.part_pending_qty, held - 1)
    if quantity <= 0:  # the legs' partial fills left one contract: it keeps its bracket, no part
        trade = trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, changes=PART_SALE_IDLE,
                                 payload={"part_sale": "nothing left to sell in part"}, **who)
        return rest_protected(trade=trade, broker=broker, who=who)
    try:
        sell = broker.place_order(part_request(trade, quantity=quantity))
    except BrokerError as error:
        return _sell_failed(trade, error, broker, held, who)
    trade = trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ORDER_PLACED,
                             changes={"part_order_id": sell.id, "part_pending_qty": quantity},
                             payload={"order": order_summary(sell)}, **who)
    return _after_sell(trade=trade, sell=sell, broker=broker, who=who)


def _after_sell(*, trade: PaperTrade, sell: Order, broker: BrokerProvider, who: dict) -> TradeResult:
    """The sell is at the broker: record its fill if it has one, and protect what is left."""
    if sell.status.is_final:
        trade = part_sale_confirm(trade=trade, sell=sell, broker=broker, **who)
    if trade.status == TradeStatus.OPEN:
        return rest_protected(trade=trade, broker=broker, who=who)
    return TradeResult(trade)


def rest_protected(*, trade: PaperTrade, broker: BrokerProvider, who: dict) -> TradeResult:
    """`rest_protect`, answering as the full close does when the rest is left without an exit."""
    trade = rest_protect(trade=trade, broker=broker, **who)
    if trade.status != TradeStatus.OPEN or trade.bracket_order_id or trade.sl_order_id or trade.tp_order_id:
        return TradeResult(trade)
    if trade.held_qty - (trade.part_pending_qty if trade.part_order_id else 0) <= 0:
        return TradeResult(trade)
    return TradeResult(trade, PositionUnprotected(
        f"{trade.attention_reason}: the position has no exit at the broker, act now.", trade=trade))


def _sell_failed(trade: PaperTrade, error: BrokerError, broker: BrokerProvider, held: int, who: dict) -> TradeResult:
    problem = as_trade_error(error, trade=trade)
    if was_not_placed(error):  # nothing sold, the bracket gone: the whole bracket goes back
        trade = trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, changes=_sale_over(trade),
                                 payload={"part_sale": "refused", "error": problem.code}, **who)
        trade, restore_error = bracket_restore(trade=trade, broker=broker, quantity=held, why=problem, **who)
        if restore_error is not None:
            problem = PositionUnprotected(f"{problem.message} The SL/TP bracket could not be placed again "
                                          f"({restore_error}): the position has no exit at the broker, act now.")
        problem.trade = trade
        return TradeResult(trade, problem)
    trade = trade_transition(  # placed or not: the monitor finds it by its tag, or sells again
        trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ATTENTION_NEEDED,
        changes={"attention_reason": f"Partial sale outcome unknown, reconcile by its tag: {error}"[:255]},
        payload={"error": problem.code}, **who)
    problem.trade = trade
    return TradeResult(trade, problem)


def rest_protect(*, trade: PaperTrade, broker: BrokerProvider, **who) -> PaperTrade:
    """Place the bracket for what is held less the part still being sold, when there is none."""
    if trade.bracket_order_id or trade.sl_order_id or trade.tp_order_id:
        return trade
    rest = trade.held_qty - (trade.part_pending_qty if trade.part_order_id else 0)
    if rest <= 0:
        return trade
    try:
        order = place_bracket(broker, *exit_requests(trade, quantity=rest, sl=trade.sl_price, tp=trade.tp_price))
    except BrokerError as error:
        return trade_transition(
            trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ATTENTION_NEEDED,
            changes={"attention_reason": f"Position unprotected: after a partial sale the bracket for the rest "
                                         f"could not be placed ({error})"[:255]},
            payload={"rest": rest, "error": str(error)}, **who)
    return trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ORDER_PLACED,
                            changes={**bracket_ids(order), "attention_reason": ""},
                            payload={"rest": rest, "order": order_summary(order)}, **who)


def part_sale_confirm(*, trade: PaperTrade, sell: Order, broker: BrokerProvider, **who) -> PaperTrade:
    """Record how the part's sell ended: what it sold is a part; contracts it did not sell (it
    ended unfilled, or in part) are held again under a bracket for everything held. A sell still
    working changes nothing."""
    if not sell.status.is_final:
        return trade
    asked = trade.part_pending_qty
    filled = _sold_by(sell)
    if filled and sell.fill is None:  # sold, at a price the broker has not given yet: read it again later
        return trade
    if filled:
        at = sell.fill.at or timezone.now()
        trade = part_record(trade=trade, quantity=filled, proceeds=sell.fill.price * filled, at=at,
                            reason=trade.part_pending_reason or ExitPartReason.PARTIAL_CLOSE, order=sell,
                            changes=PART_SALE_IDLE, **who)
    else:
        trade = trade_transition(
            trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ORDER_CANCELED, changes=_sale_over(trade),
            payload={"order": order_summary(sell), "part_sale": f"the sell was {sell.status.value}"}, **who)
    if sell.status == OrderStatus.FILLED and filled >= asked:
        return trade
    return _rebracket(trade=trade, broker=broker, who=who)


def _rebracket(*, trade: PaperTrade, broker: BrokerProvider, who: dict) -> PaperTrade:
    """The bracket covers fewer contracts than are held (the part's sell sold less than asked):
    withdraw it and place one for everything held."""
    if trade.bracket_order_id or trade.sl_order_id or trade.tp_order_id:
        withdrawn = bracket_withdraw(trade=trade, broker=broker, **who)
        if withdrawn is None or not withdrawn.known or not withdrawn.final:
            return trade_transition(
                trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ATTENTION_NEEDED,
                changes={"attention_reason": "A partial sale sold less than asked: the bracket covers fewer "
                                             "contracts than are held. Adjust the bracket."}, **who)
        if withdrawn.exit_fill is not None:
            return exit_fill_close(trade=trade, exit_fill=withdrawn.exit_fill, **who)
        trade = exit_fills_record(trade=trade, withdrawn=withdrawn, **who)
        trade = trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, changes=NO_BRACKET, **who)
    return rest_protect(trade=trade, broker=broker, **who)


def part_sale_resume(*, trade: PaperTrade, broker: BrokerProvider, found: list[Order], at: datetime,
                     **who) -> PaperTrade:
    """The monitor's turn on an OPEN trade with a part sale under way (`found`: the orders the
    broker lists under the part's tag). With the sell known: confirm it and protect the rest.
    Without: a sell found by its tag that no part records is the one (placed, not recorded);
    none, and the request long over, the steps run again (a cancelled bracket cancels again
    harmlessly; nothing was sold)."""
    with about_trade(trade.pk), trade_order_lease(trade.pk) as ours:
        if not ours:
            return trade
        trade = PaperTrade.objects.get(pk=trade.pk)
        if trade.status != TradeStatus.OPEN or not trade.part_pending_qty:
            return trade
        if trade.part_pending_reason == ExitPartReason.SCALE_OUT:  # the policy's part, to its end
            who = POLICY
        sell, answered = _the_sell(trade, broker, found)
        if sell is not None:
            if not trade.part_order_id:
                trade = trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ORDER_PLACED,
                                         changes={"part_order_id": sell.id, "part_pending_qty": sell.quantity
                                                  or trade.part_pending_qty},
                                         payload={"order": order_summary(sell), "found_by_tag": True}, **who)
            return _after_sell(trade=trade, sell=sell, broker=broker, who=who).trade
        if trade.part_order_id and not answered:
            return _sell_unreadable(trade=trade, broker=broker, who=who)
        if not answered or trade.part_order_id or (trade.part_started_at
                                                   and at - trade.part_started_at < PART_SALE_STALE):
            return trade
        return _part_steps(trade=trade, broker=broker, who=who).trade


def _sold_by(order: Order) -> int:
    return order.fill.quantity if order.fill is not None else order.filled_quantity


def _may_have_sold(order: Order) -> bool:
    """Working, or ended having sold: an order that ended unfilled is no sale's sell any more."""
    return not order.status.is_final or _sold_by(order) > 0


def _the_sell(trade: PaperTrade, broker: BrokerProvider, found: list[Order]) -> tuple[Order | None, bool]:
    """The sale's sell, and whether the broker answered (no answer: nothing may be concluded)."""
    if trade.part_order_id:
        known = next((order for order in found if order.id == trade.part_order_id), None)
        if known is not None and not (_sold_by(known) and known.fill is None):
            return known, True
        try:  # unlisted, or listed without its fill's price: ask for it
            return broker.get_order(trade.part_order_id), True
        except BrokerError:
            return None, False
    tag, legacy = part_tag(trade), trade_order_tag(trade, OrderPurpose.PART)
    recorded = set(TradeExitPart.objects.filter(trade_id=trade.pk).values_list("order_id", flat=True))
    listed = next((order for order in found if _may_have_sold(order) and (
        order.tag == tag or (order.tag == legacy and order.id not in recorded))), None)
    if listed is not None:
        return listed, True
    try:
        placed = broker.find_order_by_tag(tag)
    except BrokerError:
        return None, False
    return (placed if placed is not None and _may_have_sold(placed) else None), True


# A sale whose sell the broker cannot show this many looks running is given up: the trade is
# released with its bracket for everything held, and the trader told to check the broker.
SELL_UNREADABLE_LOOKS = 5


def _sell_unreadable(*, trade: PaperTrade, broker: BrokerProvider, who: dict) -> PaperTrade:
    looks = TradeEvent.objects.filter(trade_id=trade.pk, payload__part_sale_unreadable=trade.part_order_id).count()
    if looks + 1 < SELL_UNREADABLE_LOOKS:
        return trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ATTENTION_NEEDED,
                                changes={}, payload={"part_sale_unreadable": trade.part_order_id}, **who)
    order_id = trade.part_order_id
    trade = trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ATTENTION_NEEDED,
                             changes=PART_SALE_IDLE, payload={"part_sale_unreadable": order_id, "given_up": True},
                             **who)
    trade = _rebracket(trade=trade, broker=broker, who=who)
    if trade.status != TradeStatus.OPEN or trade.attention_reason:  # closed meanwhile, or a graver problem
        return trade
    return trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ATTENTION_NEEDED, changes={
        "attention_reason": f"The partial sale's sell {order_id} could not be read at the broker: check what "
                            "it sold there; the bracket covers every contract held."[:255]}, **who)
