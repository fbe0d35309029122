"""Control of a trade's working orders: a resting limit entry withdrawn or re-priced, a close's
sell withdrawn or switched between market and limit; and whether an order sent now meets the
market or waits for its next open.

Every action here:

1. claims the trade with a conditional update on the version the client saw (a change with no
   new state, written to the audit log, committed before the broker hears anything): of two
   parallel requests, or a repeat of the same one, the second is refused with the trade as it
   now stands;
2. works at the broker under the trade's order lease (`closing.trade_order_lease`), which a close
   request and the monitor's resume of a close also take, and while which the monitor's order
   sync leaves the trade alone: nothing of ours acts on the trade's orders beside it;
3. cancels first and reads the cancel's answer (`BrokerProvider.cancel_order` answers the order as
   it then stands, a fill included) before anything else is sent. A fill the broker made before
   the cancel arrived wins: it is recorded as the monitor would record it (an entry fill opens the
   trade and its position is protected; a sell's fill closes it once, at its price) and the
   answer says so (`OrderAlreadyFilled`), with nothing else sent. A cancel the broker has not
   confirmed leaves everything as it is, and nothing new is sent.

Re-pricing is cancel/replace on every broker: Tradier's modify endpoint (PUT orders/{id}) is not
documented for the entry leg of an OTOCO, nor for a change of type to market, and a replace
after a confirmed cancel is as safe on the local paper broker as at Tradier.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from brokers.base import BrokerError, BrokerProvider, Order, OrderPurpose, OrderStatus
from brokers.market import Market, OutsideCalendar, default_market
from tradeoptions import tenancy
from tradeoptions.logs import about_trade
from trades.models import (
    CONTRACT_MULTIPLIER,
    AccountSettings,
    Actor,
    EntryType,
    EventKind,
    PaperTrade,
    StrategyType,
    TradeStatus,
)

from .accounts import account_settings_for
from .closing import (
    REQUEST_ENDED,
    Withdrawal,
    bracket_restore,
    bracket_withdraw,
    close_confirm,
    conflict_refused,
    exit_fill_close,
    exit_fills_record,
    sell_failed,
    sold_in_parts_close,
    trade_order_lease,
)
from .errors import (
    BrokerDown,
    InvalidTradeInput,
    InvalidTransition,
    OrderAlreadyFilled,
    OrdersBusy,
    PositionUnprotected,
    RiskLimitExceeded,
    TradeError,
    VersionConflict,
    price_text,
)
from .lifecycle import trade_transition
from .opening import TradeResult, place_entry, trade_entry_update
from .orders import as_trade_error, broker_of, close_request, order_summary, split_legs, trade_order_tag
from .protection import bracket_attach
from .risk import CENT, RiskRoom, risk_room, trade_risk, trades_are
from .spread_opening import spread_entry_update

# --- The session an order meets ---------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """Whether the market is open now, and if not, the open of the session an order sent now (or
    working now) first meets: such an order is queued for the open, and can be withdrawn until
    it fills."""

    open: bool
    next_open: datetime | None
    at: datetime | None = None  # the market's clock when asked (None: it could not be read)

    @property
    def queued_for_open(self) -> bool:
        return not self.open


def market_session(*, market: Market | None = None) -> Session:
    """From the exchange calendar of the configured market (XNYS in production). A moment the
    calendar does not cover (or no market at all) reads as closed with no known open: an answer
    that lists trades must not fail for it."""
    try:
        market = market or default_market()
        now = market.now()
        if market.is_open(now):
            return Session(open=True, next_open=None, at=now)
        return Session(open=False, next_open=market.next_open(now), at=now)
    except (BrokerError, OutsideCalendar):
        return Session(open=False, next_open=None)


# --- The entry --------------------------------------------------------------------------------


def entry_cancel(*, user: AbstractBaseUser, trade_id: int, version: int, market: Market | None = None) -> TradeResult:
    """Withdraw a PENDING trade's resting entry: CANCELED when the broker confirms it unfilled."""
    return _on_entry(user=user, trade_id=trade_id, version=version, market=market, limit_price=None)


def entry_reprice(*, user: AbstractBaseUser, trade_id: int, version: int, limit_price: Decimal,
                  market: Market | None = None) -> TradeResult:
    """Move a PENDING trade's resting limit entry to `limit_price` (cancel, then place again with
    the same tag and bracket). The price must still lie between the stop-loss and the take-profit,
    and a higher price must fit the risk limits and the buying power (`_within_limits`)."""
    return _on_entry(user=user, trade_id=trade_id, version=version, market=market, limit_price=limit_price)


def _on_entry(*, user, trade_id: int, version: int, market: Market | None, limit_price: Decimal | None) -> TradeResult:
    action = "entry_cancel" if limit_price is None else "entry_reprice"
    market = market or default_market()
    who = {"actor": Actor.USER, "actor_user": user, "actor_label": action}
    with about_trade(trade_id), tenancy.acting_as(user.pk):
        trade = PaperTrade.objects.get(owner=user, pk=trade_id)
        if trade.status != TradeStatus.PENDING:
            raise InvalidTransition(f"Only a pending entry can be {_done(action)}; the trade is {trade.status}.",
                                    trade=trade)
        if limit_price is not None and trade.strategy_type != StrategyType.SINGLE:
            raise InvalidTradeInput({"limit_price": [
                "A multi-leg entry cannot be re-priced: cancel it and open the spread again at the new price."]})
        if limit_price is not None:
            _check_entry_price(trade, limit_price)
        if not trade.entry_order_id:
            raise InvalidTransition("The entry order's outcome is not known yet (the monitor is looking it up by "
                                    "its tag); try again in a moment.", trade=trade)
        account = account_settings_for(user=user)
        broker = broker_of(account, mode=trade.broker_mode, market=market)
        if limit_price is not None:
            _within_limits(trade=trade, user=user, account=account, broker=broker, limit_price=limit_price,
                           now=market.now())
        claimed = _claim(trade=trade, user=user, version=version, action=action, who=who,
                         payload={"limit_price": limit_price} if limit_price is not None else {})
        if isinstance(claimed, TradeResult):
            return claimed
        with trade_order_lease(trade.pk) as ours:
            if not ours:
                return TradeResult(claimed, OrdersBusy(_BUSY, trade=claimed))
            return _entry_at_broker(trade=claimed, broker=broker, market=market, limit_price=limit_price, who=who)


def _check_entry_price(trade: PaperTrade, limit_price: Decimal) -> None:
    if trade.entry_type != EntryType.LIMIT:
        raise InvalidTransition("A market entry has no price to change; cancel it instead.", trade=trade)
    price, sl, tp = price_text(limit_price), price_text(trade.sl_price), price_text(trade.tp_price)
    if trade.sl_price >= limit_price:
        raise InvalidTradeInput({"limit_price": [
            f"The stop-loss ({sl}) would be at or above an entry at {price}: a long option's stop must lie below "
            f"its entry. Give a limit above {sl}, or cancel the entry and open it again with a lower stop."]})
    if trade.tp_price <= limit_price:
        raise InvalidTradeInput({"limit_price": [
            f"The take-profit ({tp}) would be at or below an entry at {price}: a long option's target must lie "
            f"above its entry. Give a limit below {tp}."]})


def _within_limits(*, trade: PaperTrade, user, account: AccountSettings, broker: BrokerProvider,
                   limit_price: Decimal, now: datetime) -> None:
    """A higher limit adds debit and risk at the stop, so it is measured as `trade_open` measures
    an open: by the same `RiskRoom`, with this trade's current reservation left out so that it is
    not counted twice; then against the broker's buying power. All before anything is claimed or
    cancelled: a refused re-price leaves the working order as it was. A limit no higher takes
    nothing more and is always allowed, even over a limit lowered since the open.

    Read without the settings lock, as the validate call reads: the lock cannot be held over the
    broker's cancel, so until the replacement is recorded a parallel open is measured against this
    trade's old price."""
    if limit_price <= trade.planned_entry_price:
        return
    room = risk_room(user=user, account=account, now=now, excluding=trade.pk,
                     trade_risk=trade_risk(limit_price, trade.sl_price, trade.qty))
    if (problem := room.breach()) is not None:
        raise RiskLimitExceeded(_over_limit(room, problem, trade, limit_price), limit=problem.limit,
                                current=problem.current, allowed=problem.allowed, field="limit_price")
    _within_buying_power(trade=trade, broker=broker, limit_price=limit_price)


def _over_limit(room: RiskRoom, problem: RiskLimitExceeded, trade: PaperTrade, limit_price: Decimal) -> str:
    """Which limit a re-price to `limit_price` breaks, and the room left, in the trader's words."""
    price, now_at = price_text(limit_price), price_text(trade.planned_entry_price)
    only_lower = f"this entry can only be re-priced at or below its current {now_at}"
    if problem.limit == "max_positions":
        return (f"Besides this one, {trades_are(room.positions)} open or pending and your limit is "
                f"{room.max_positions} at a time: until one ends, {only_lower}.")
    if problem.limit == "daily_loss_limit":
        return (f"Today's realized loss is ${room.loss_today:,.2f} and your daily loss limit is "
                f"${room.daily_loss_limit:,.2f}: until tomorrow, {only_lower}.")
    highest = room.highest_entry(sl=trade.sl_price, qty=trade.qty)
    fits = f"the highest limit that fits is {price_text(highest)}" if highest > trade.planned_entry_price \
        else only_lower
    if room.heat_after_pct is None:
        return f"Your account balance is $0.00, so no added risk fits under the heat limit: {fits}."
    stop = price_text(trade.sl_price)
    return (f"At {price} this entry would risk ${room.trade_risk:,.2f} down to its stop ({stop}), "
            f"and risk at the stops would be ${room.heat_after:,.2f}, {room.heat_after_pct:.2f}% of your "
            f"${room.balance:,.2f} balance, over your heat limit of {problem.allowed.normalize():f}%: {fits}.")


def _within_buying_power(*, trade: PaperTrade, broker: BrokerProvider, limit_price: Decimal) -> None:
    """The replacement buys at the new limit once the old order's reservation is freed, so the
    extra debit must fit in the buying power the broker reports now. That figure already holds
    the working entry back (the local paper ledger does; the fake Tradier does as the sandbox is
    taken to; that live Tradier's `option_buying_power` does is UNCONFIRMED: if not, this check is
    looser and the broker refuses the replacement, as it refuses an open it cannot pay for)."""
    extra = (limit_price - trade.planned_entry_price) * trade.qty * CONTRACT_MULTIPLIER
    try:
        available = broker.get_account_balance().option_buying_power
    except BrokerError as error:
        problem = as_trade_error(error, trade=trade)
        problem.message = f"Your buying power could not be read, so nothing was cancelled: {problem.message}"
        raise problem from None
    if extra > available:
        room = max(available, Decimal(0)) / (trade.qty * CONTRACT_MULTIPLIER)
        highest = trade.planned_entry_price + room.quantize(CENT, rounding=ROUND_DOWN)
        raise RiskLimitExceeded(
            f"At {price_text(limit_price)} this entry needs ${extra:,.2f} more than its order holds now, and your "
            f"buying power is ${available:,.2f}: the highest limit that fits is {price_text(highest)}.",
            limit="buying_power", current=extra, allowed=available, field="limit_price")


def _entry_at_broker(*, trade: PaperTrade, broker: BrokerProvider, market: Market, limit_price: Decimal | None,
                     who: dict) -> TradeResult:
    order, problem = _cancel(broker, trade.entry_order_id, trade)
    if problem is not None:
        return TradeResult(trade, problem)
    spread = trade.strategy_type != StrategyType.SINGLE  # its legs are the spread's, not a bracket
    entry = (split_legs(order)[0] or order) if order.legs and not spread else order
    filled = entry.fill.quantity if entry.fill else entry.filled_quantity
    if entry.status.is_working:
        return TradeResult(trade, BrokerDown(
            "The broker has not confirmed the entry's cancel: it may still fill, and nothing new was placed. "
            "Try again in a moment.", trade=trade))
    if spread and filled:  # the fill came first: open at the legs' fills; the monitor watches its exits
        trade = spread_entry_update(trade_id=trade.pk, entry=order, **who)
        return TradeResult(trade, OrderAlreadyFilled(
            f"The spread's entry filled ({trade.filled_qty} at {price_text(trade.entry_price)} "
            f"{trade.net_direction}) before the broker received the cancel: the trade is open.", trade=trade))
    if filled or entry.status == OrderStatus.FILLED:  # the fill came first: the trade opens as it would have
        trade = _entry_filled(trade=trade, order=order, entry=entry, broker=broker, market=market, who=who)
        price = trade.entry_price
        return TradeResult(trade, OrderAlreadyFilled(
            f"The entry filled ({trade.qty} at {price_text(price)}) before the broker received the "
            f"{'cancel' if limit_price is None else 're-price'}: the trade is open, protected by its SL/TP.",
            trade=trade))
    if limit_price is None or entry.status != OrderStatus.CANCELED:
        # Withdrawn (or it ended unfilled on its own, refused or expired): record it as it ended.
        return TradeResult(trade_entry_update(trade_id=trade.pk, entry=entry, **who))
    trade = trade_transition(
        trade_id=trade.pk, to=TradeStatus.PENDING, kind=EventKind.ORDER_CANCELED, expected_version=trade.version,
        changes={"planned_entry_price": limit_price, "entry_order_id": "", "bracket_order_id": "",
                 "sl_order_id": "", "tp_order_id": ""},
        payload={"order": order_summary(order), "repriced_from": trade.planned_entry_price,
                 "repriced_to": limit_price}, **who)
    return place_entry(trade, broker, at=market.now(), **who)


def _entry_filled(*, trade: PaperTrade, order: Order, entry: Order, broker: BrokerProvider, market: Market,
                  who: dict) -> PaperTrade:
    """Record the entry's fill that beat the cancel, and protect the position. An OTOCO's exits
    were cancelled with it (the cancel goes to the whole order): they are forgotten and a bracket
    is placed for what was bought. Under the order lease the monitor is not at work on the trade."""
    _, sl, tp = split_legs(order) if order.legs else (None, None, None)
    bracket_works = sl is not None and tp is not None and sl.status.is_working and tp.status.is_working
    with transaction.atomic():
        current = PaperTrade.objects.select_for_update().get(pk=trade.pk)
        if current.status != TradeStatus.PENDING:  # the monitor recorded it first
            return current
        keep = {} if bracket_works else {"bracket_order_id": "", "sl_order_id": "", "tp_order_id": ""}
        trade = trade_entry_update(trade_id=trade.pk, entry=entry, changes=keep, **who)
    if trade.status == TradeStatus.OPEN and not bracket_works:
        trade = bracket_attach(trade=trade, broker=broker, at=market.now(), **who)
    return trade


# --- The close --------------------------------------------------------------------------------


SPREAD_CLOSE_STANDS = ("A spread's close is one market order for every leg: it cannot be withdrawn or re-priced in "
                       "this release, and it fills at the legs' natural sides.")


def close_cancel(*, user: AbstractBaseUser, trade_id: int, version: int, market: Market | None = None) -> TradeResult:
    """Withdraw a CLOSING trade's close: the sell is cancelled, and once the broker confirms it
    unfilled, the trade is OPEN again with its SL/TP bracket placed again."""
    return _on_close(user=user, trade_id=trade_id, version=version, market=market, action="close_cancel",
                     limit_price=None)


def close_reprice(*, user: AbstractBaseUser, trade_id: int, version: int, limit_price: Decimal | None,
                  market: Market | None = None) -> TradeResult:
    """Replace a CLOSING trade's working sell by a market sell (`limit_price` None) or a limit sell
    at `limit_price`, for every contract still held."""
    return _on_close(user=user, trade_id=trade_id, version=version, market=market, action="close_reprice",
                     limit_price=limit_price)


def _on_close(*, user, trade_id: int, version: int, market: Market | None, action: str,
              limit_price: Decimal | None) -> TradeResult:
    market = market or default_market()
    who = {"actor": Actor.USER, "actor_user": user, "actor_label": action}
    with about_trade(trade_id), tenancy.acting_as(user.pk):
        trade = PaperTrade.objects.get(owner=user, pk=trade_id)
        if trade.strategy_type != StrategyType.SINGLE:  # its close is one market order for every leg
            raise InvalidTransition(SPREAD_CLOSE_STANDS, trade=trade)
        if trade.status != TradeStatus.CLOSING:
            raise InvalidTransition(f"Only a pending close can be {_done(action)}; the trade is {trade.status}.",
                                    trade=trade)
        broker = broker_of(account_settings_for(user=user), mode=trade.broker_mode, market=market)
        payload = {"order_type": "market" if limit_price is None else "limit", "limit_price": limit_price} \
            if action == "close_reprice" else {}
        claimed = _claim(trade=trade, user=user, version=version, action=action, who=who, payload=payload)
        if isinstance(claimed, TradeResult):
            return claimed
        with trade_order_lease(trade.pk) as ours:
            if not ours:
                return TradeResult(claimed, OrdersBusy(_BUSY, trade=claimed))
            return _close_at_broker(trade=claimed, broker=broker, action=action, limit_price=limit_price, who=who)


def _close_at_broker(*, trade: PaperTrade, broker: BrokerProvider, action: str, limit_price: Decimal | None,
                     who: dict) -> TradeResult:
    sell_id = trade.close_order_id or _listed_sell(trade, broker)
    if not sell_id:
        if action == "close_reprice":
            return TradeResult(trade, InvalidTransition(
                "The close has no order at the broker yet (its SL/TP bracket is being withdrawn); withdraw the "
                "close or try again in a moment.", trade=trade))
        return _close_withdrawn_before_the_sell(trade=trade, broker=broker, who=who)
    sell, problem = _cancel(broker, sell_id, trade)
    if problem is not None:
        return TradeResult(trade, problem)
    if sell.status.is_working:
        return TradeResult(trade, BrokerDown(
            "The broker has not confirmed the cancel of the close order: it may still fill, and nothing new was "
            "sent. Try again in a moment.", trade=trade))
    if sell.status == OrderStatus.FILLED and sell.fill is not None:  # the sell came first: that is the close
        trade = close_confirm(trade_id=trade.pk, sell=sell, changes={"close_order_id": sell.id}, **who)
        return TradeResult(trade, OrderAlreadyFilled(
            f"The close order filled at {trade.close_price} before the broker received the "
            f"{'cancel' if action == 'close_cancel' else 'change'}: the trade is closed.", trade=trade))
    trade = _sell_ended(trade=trade, sell=sell, who=who)
    if trade.status == TradeStatus.CLOSED:
        return TradeResult(trade, OrderAlreadyFilled(
            "The close order sold every contract before the broker received the cancel: the trade is closed.",
            trade=trade))
    held = trade.held_qty
    if action == "close_cancel":
        return _reprotect(trade=trade, broker=broker, held=held, who=who)
    try:
        new_sell = broker.place_order(close_request(trade, quantity=held, limit_price=limit_price))
    except BrokerError as error:
        return sell_failed(trade, error, broker, held, who)
    return TradeResult(close_confirm(trade_id=trade.pk, sell=new_sell, changes={"close_order_id": new_sell.id},
                                     **who))


def _sell_ended(*, trade: PaperTrade, sell: Order, who: dict) -> PaperTrade:
    """The withdrawn sell as it ended: contracts it sold in part are stored like an exit leg's
    (`exit_fills_record`, so the close's P&L blends them in), and its id is forgotten (a later
    close's sell is known by its own). The trade stays CLOSING, the request's own."""
    if sell.fill is not None:
        sold, proceeds = sell.fill.quantity, sell.fill.price * sell.fill.quantity
    else:
        sold, proceeds = sell.filled_quantity, Decimal(0)
    if sold:
        trade = exit_fills_record(trade=trade, withdrawn=Withdrawal(
            orders=[sell], exit_fill=None, final=True, sold=sold, proceeds=proceeds), **who)
        if trade.held_qty <= 0:
            return sold_in_parts_close(trade=trade, withdrawn=Withdrawal(
                orders=[sell], exit_fill=None, final=True, sold=sold, proceeds=proceeds), **who)
    return trade_transition(trade_id=trade.pk, to=TradeStatus.CLOSING, kind=EventKind.ORDER_CANCELED,
                            expected_version=trade.version, changes={"close_order_id": ""},
                            payload={"order": order_summary(sell)}, **who)


def _close_withdrawn_before_the_sell(*, trade: PaperTrade, broker: BrokerProvider, who: dict) -> TradeResult:
    """A CLOSING trade with no sell at the broker (its bracket's cancel was not confirmed, or not
    answered): the bracket is withdrawn as a close would (idempotent), and a leg's fill that came
    first is the close; otherwise the bracket is placed again and the trade is OPEN."""
    withdrawn = bracket_withdraw(trade=trade, broker=broker, **who)
    if withdrawn is None:  # the cancel did not take: the bracket is working, the position protected
        trade = trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.STATE_CHANGE,
                                 changes={"attention_reason": "", **REQUEST_ENDED}, payload={"withdrawn": True},
                                 **who)
        return TradeResult(trade)
    if not withdrawn.known or not withdrawn.final:
        return TradeResult(trade, BrokerDown(
            "The broker has not confirmed how the SL/TP bracket ended, so the close cannot be withdrawn yet; "
            "nothing was sold. Try again in a moment.", trade=trade))
    if withdrawn.exit_fill is not None:
        trade = exit_fill_close(trade=trade, exit_fill=withdrawn.exit_fill, **who)
        return TradeResult(trade, OrderAlreadyFilled(
            f"The {'stop-loss' if trade.close_reason == 'SL_HIT' else 'take-profit'} filled before the close "
            "could be withdrawn: the trade is closed.", trade=trade))
    trade = exit_fills_record(trade=trade, withdrawn=withdrawn, **who)
    if trade.held_qty <= 0:
        return TradeResult(sold_in_parts_close(trade=trade, withdrawn=withdrawn, **who))
    return _reprotect(trade=trade, broker=broker, held=trade.held_qty, who=who)


def _reprotect(*, trade: PaperTrade, broker: BrokerProvider, held: int, who: dict) -> TradeResult:
    trade, restore_error = bracket_restore(trade=trade, broker=broker, quantity=held, why=CloseWithdrawn(), **who)
    if trade.close_in_flight_since is not None:
        trade = trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.STATE_CHANGE,
                                 changes=REQUEST_ENDED, payload={"close_withdrawn": True}, **who)
    if restore_error is not None:
        return TradeResult(trade, PositionUnprotected(
            f"The close was withdrawn, but the SL/TP bracket could not be placed again ({restore_error}): the "
            "position has no exit at the broker; the monitor keeps trying.", trade=trade))
    return TradeResult(trade)


class CloseWithdrawn(TradeError):
    code = "close_withdrawn"

    def __init__(self) -> None:
        super().__init__("The trader withdrew the close.")


def _listed_sell(trade: PaperTrade, broker: BrokerProvider) -> str:
    """A sell placed whose answer was lost, found by its tag."""
    try:
        found = broker.find_order_by_tag(trade_order_tag(trade, OrderPurpose.CLOSE))
    except BrokerError:
        return ""
    return found.id if found is not None and found.status.is_working else ""


# --- Shared steps -----------------------------------------------------------------------------

_BUSY = "Another change to this trade's orders is at the broker right now; nothing was sent. Try again in a moment."


def _claim(*, trade: PaperTrade, user, version: int, action: str, who: dict, payload: dict) -> PaperTrade | TradeResult:
    """Step 1: the version the client saw, checked and bumped, with the request in the audit log."""
    try:
        return trade_transition(trade_id=trade.pk, to=trade.status, expected_version=version,
                                kind=EventKind.STATE_CHANGE, payload={"requested": action, **payload}, **who)
    except VersionConflict as error:
        return conflict_refused(trade=trade, error=error, user=user, action=action, sent_version=version)


def _cancel(broker: BrokerProvider, order_id: str, trade: PaperTrade) -> tuple[Order | None, TradeError | None]:
    """The order as the cancel left it; a cancel still shown working is read once more."""
    try:
        order = broker.cancel_order(order_id)
        if _working(order):
            order = broker.get_order(order_id)
    except BrokerError as error:
        problem = as_trade_error(error, trade=trade)
        problem.message = f"The cancel did not go through, nothing else was sent: {problem.message}"
        return None, problem
    return order, None


def _working(order: Order) -> bool:
    entry = (split_legs(order)[0] or order) if order.legs else order
    return entry.status.is_working


def _done(action: str) -> str:
    return "re-priced" if action.endswith("reprice") else "cancelled"
