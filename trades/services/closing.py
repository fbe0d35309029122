"""Every way a held trade ends, in one place: a manual close, an exit leg's fill, expiry.

A manual close, in order (the reasoning, and what a crash between two steps leaves, is in
docs/reliability.md, "Closing without a short"):

1. OPEN → CLOSING, a conditional update on the version the client saw, committed before the
   broker hears anything: of two parallel closes the second is refused with the current trade.
   `close_in_flight_since` says a request is at work (cleared when it ends leaving the trade
   CLOSING); an earlier close's `close_order_id` is forgotten.
2. Under the trade's close lease (so the monitor's resume never sells beside it), the SL/TP
   bracket is cancelled, and each exit leg's final state is read from the cancel's answer
   (`bracket_withdraw`). A leg that filled first closes the trade as TP_HIT/SL_HIT at its
   fill, and no sell is sent: the position is gone already. Contracts a leg sold in part are
   stored on the trade (`exit_fills_record`) and the close's P&L blends them in.
3. Only once every leg is final does the market sell-to-close go, for what is still held. The
   sell never coexists with a working exit, so it can neither double the exit (an unintended
   short) nor be refused by a broker that will not sell contracts committed to working orders.
   The position is without an exit only between the cancel's answer and the sell: one round trip.
4. The sell filled → CLOSED/MANUAL_CLOSE at its fill; still working → stays CLOSING and the
   monitor confirms it (`close_confirm`); refused → the bracket is placed again and the trade is
   OPEN (`bracket_restore`).

A close the process left half done (CLOSING, no sell at the broker) is finished by the monitor
with the same steps (`close_resume`); steps 2 and 3 are safe to repeat.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from brokers.base import (
    SPREAD_CLASSES,
    BrokerAuthError,
    BrokerError,
    BrokerForbidden,
    BrokerMaintenance,
    BrokerProvider,
    BrokerRateLimited,
    Order,
    OrderStatus,
    OrderType,
)
from brokers.market import Market, default_market
from tradeoptions import tenancy
from tradeoptions.logs import about_trade
from trades.models import CONTRACT_MULTIPLIER, Actor, CloseReason, EventKind, ExitPartReason, PaperTrade, TradeStatus

from .accounts import account_settings_for
from .broker_health import broker_trouble_record
from .costs import exit_costs
from .errors import BrokerDown, CloseForbidden, PositionUnprotected, TradeError, VersionConflict
from .exit_parts import PART_SALE_IDLE, exit_fills_blend, part_row_create, parts_consistent
from .lifecycle import event_record, trade_transition
from .opening import TradeResult
from .orders import (
    CLOSE_FORBIDDEN_TOLD,
    as_trade_error,
    bracket_ids,
    broker_of,
    close_request,
    exit_requests,
    order_summary,
    place_bracket,
    split_legs,
    was_not_placed,
)
from .spread_closing import is_multi_leg, spread_close_confirm, spread_close_steps

CENT = Decimal("0.01")
BROKER_FILL, EXPIRY = "BROKER_FILL", "EXPIRY"
# A close request that leaves the trade CLOSING says it is done with it: the monitor, which
# finishes a CLOSING trade no request is at work on, need not wait for one in flight.
REQUEST_ENDED = {"close_in_flight_since": None}


def close_outcome(trade: PaperTrade, *, price: Decimal, at: datetime, reason: str) -> dict:
    """The outcome fields of a trade whose held contracts close at `price` per share: P&L in
    dollars (premiums only, before commissions: `realized_pnl` is the gross figure), percent of
    the entry premium, hours held, and the exit's commission (`costs.exit_costs`).
    Contracts exit legs sold earlier in partial fills count at their own price: the close price
    is the quantity-weighted average of both. Where those contracts were recorded as parts (every
    one since parts exist), the P&L is the sum of the parts' and this exit's, to the cent."""
    held, sold = trade.held_qty, trade.exit_filled_qty
    parts = parts_consistent(trade) if sold else []
    proceeds = price * held + (trade.exit_filled_price * sold if sold else 0)
    quantity = held + sold
    pnl = (proceeds - trade.entry_price * quantity) * CONTRACT_MULTIPLIER
    if parts:
        pnl = sum((part.pnl_gross for part in parts), (price - trade.entry_price) * held * CONTRACT_MULTIPLIER)
    if sold:
        price = (proceeds / quantity).quantize(Decimal("0.0001"))
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
        **exit_costs(trade, reason=reason),
        **PART_SALE_IDLE,  # a part sale the close overtook (a leg filled first) is over
    }


def conflict_refused(*, trade: PaperTrade, error: VersionConflict, user: AbstractBaseUser, action: str,
                     sent_version: int, who: dict | None = None) -> TradeResult:
    """Write the refusal to the audit log and hand the current trade back. `who`: the system when it
    was the one refused (an exit policy's look), so the log does not put it on the trader."""
    current = error.trade
    actor = who if who and who.get("actor") == Actor.SYSTEM else {"actor": Actor.USER, "actor_user": user,
                                                                   "actor_label": action}
    event_record(
        trade=current, kind=EventKind.CONFLICT_REFUSED, **actor,
        old_status=current.status, new_status=current.status,
        payload={"action": action, "sent_version": sent_version, "current_version": current.version},
    )
    return TradeResult(current, error)


# --- The bracket, withdrawn -------------------------------------------------------------------


@dataclass(frozen=True)
class ExitFill:
    """A bracket leg that filled: the trade's close reason, the leg, and its trigger price."""

    reason: str
    leg: Order
    trigger: Decimal | None


def filled_exit(sl: Order | None, tp: Order | None) -> ExitFill | None:
    """The bracket leg that filled, if one did."""
    for reason, leg in ((CloseReason.SL_HIT, sl), (CloseReason.TP_HIT, tp)):
        if leg is not None and leg.status == OrderStatus.FILLED and leg.fill is not None:
            trigger = leg.stop_price if reason == CloseReason.SL_HIT else leg.limit_price
            return ExitFill(reason, leg, trigger)
    return None


@dataclass(frozen=True)
class Withdrawal:
    """The bracket as the cancel left it. `final`: no exit leg can fill any more. `sold`:
    contracts the legs sold before the cancel arrived (a partial fill included), for `proceeds`
    (per share: the sum of quantity × average fill price)."""

    orders: list[Order]
    exit_fill: ExitFill | None
    final: bool
    sold: int
    proceeds: Decimal = Decimal(0)
    known: bool = True  # False: neither the cancel nor a read of the order answered (UNKNOWN)


# A cancel the broker did not answer, nor a read after it: the bracket may be working or gone.
UNKNOWN = Withdrawal(orders=[], exit_fill=None, final=False, sold=0, known=False)


def _sold_by(leg: Order) -> tuple[int, Decimal]:
    """(contracts, quantity × price) a leg sold; a fill reported without a price counts at the
    leg's own price (its limit, or its stop)."""
    if leg.fill is not None:
        return leg.fill.quantity, leg.fill.price * leg.fill.quantity
    price = leg.limit_price if leg.limit_price is not None else leg.stop_price
    return leg.filled_quantity, (price or Decimal(0)) * leg.filled_quantity


def bracket_order_ids(trade: PaperTrade) -> list[str]:
    if trade.bracket_order_id:
        return [trade.bracket_order_id]
    return [order_id for order_id in (trade.sl_order_id, trade.tp_order_id) if order_id]


def exit_legs_of(orders: list[Order]) -> tuple[Order | None, Order | None]:
    """(SL, TP) among the bracket's orders as the broker answered: an OCO's legs, an OTOCO's
    exits, or two single orders."""
    exits = [leg for order in orders for leg in (split_legs(order)[1:] if order.legs else (order,))
             if leg is not None]
    sl = next((leg for leg in exits if leg.order_type in (OrderType.STOP, OrderType.STOP_LIMIT)), None)
    tp = next((leg for leg in exits if leg.order_type == OrderType.LIMIT), None)
    return sl, tp


def bracket_withdraw(*, trade: PaperTrade, broker: BrokerProvider, refused: list[BrokerError] | None = None,
                     **who) -> Withdrawal | None:
    """Cancel the trade's SL/TP orders and say how each ended. Each outcome is logged.

    A cancel's answer is the order as it then stands (`BrokerProvider.cancel_order`); a leg the
    answer still shows working (a cancel the broker has not finished) is read once more. A cancel
    the broker certainly did not act on (maintenance, a refused token) leaves the bracket as it
    was (None). Any other failed cancel is followed by one read of the order: None if it shows
    the bracket still working (the cancel did not take: nothing may be sold beside it), the
    order's final state if the cancel went through after all (or a fill came first), and UNKNOWN
    if the broker answered neither."""
    orders = []
    for order_id in bracket_order_ids(trade):
        try:
            order = broker.cancel_order(order_id)
        except BrokerError as error:
            event_record(trade=trade, kind=EventKind.ATTENTION_NEEDED, old_status=trade.status,
                         new_status=trade.status, payload={"cancel_failed": order_id, "error": str(error)}, **who)
            if isinstance(error, CANCEL_NOT_ACTED_ON) and not orders:  # the bracket is as it was
                if refused is not None:  # the caller tells why (a forbidden account is not an outage)
                    refused.append(error)
                return None
            order = _read(broker, order_id)
            if order is None:
                return UNKNOWN
            if _working(order):
                return None
        else:
            if _working(order):
                order = _read(broker, order_id) or order
        event_record(trade=trade, kind=EventKind.ORDER_CANCELED, old_status=trade.status, new_status=trade.status,
                     payload={"order": order_summary(order)}, **who)
        orders.append(order)
    return withdrawal_of(orders)


# A cancel the broker certainly did nothing with: its maintenance page, a refused token, a forbidden
# account (403), a rate limit (ours or its 429). A timeout or a dropped connection may have
# cancelled: read the order.
CANCEL_NOT_ACTED_ON = (BrokerMaintenance, BrokerAuthError, BrokerForbidden, BrokerRateLimited)


def _working(order: Order) -> bool:
    return any(leg.status.is_working for leg in exit_legs_of([order]) if leg is not None)


def _read(broker: BrokerProvider, order_id: str) -> Order | None:
    try:
        return broker.get_order(order_id)
    except BrokerError:
        return None


def withdrawal_of(orders: list[Order]) -> Withdrawal:
    """How a bracket's exit legs stand, from its orders as the broker reported them."""
    sl, tp = exit_legs_of(orders)
    legs = [leg for leg in (sl, tp) if leg is not None]
    sold = [_sold_by(leg) for leg in legs]
    return Withdrawal(orders=orders, exit_fill=filled_exit(sl, tp), final=all(leg.status.is_final for leg in legs),
                      sold=sum(quantity for quantity, _ in sold),
                      proceeds=sum((value for _, value in sold), Decimal(0)))


def exit_fills_record(*, trade: PaperTrade, withdrawn: Withdrawal, **who) -> PaperTrade:
    """Store what the withdrawn bracket's legs sold in partial fills before the cancel: the trade
    holds that much less (`held_qty`), and its close will blend their price in. The bracket,
    over, is forgotten in the same change, so the same fills are never counted twice (and a
    position still held is protected again: `bracket_protect`, `bracket_restore`, an adjust).
    A trade whose legs sold nothing, or that a leg may still sell from, is returned unchanged."""
    if not withdrawn.final or withdrawn.exit_fill is not None or withdrawn.sold <= 0:
        return trade
    with transaction.atomic():  # the fills and their part, or neither
        as_part = parts_consistent(trade) is not None  # a first-class part, unless earlier fills predate parts
        trade = trade_transition(
            trade_id=trade.pk, to=trade.status, kind=EventKind.ORDER_FILLED, expected_version=trade.version,
            changes={**exit_fills_blend(trade, quantity=withdrawn.sold, proceeds=withdrawn.proceeds),
                     "bracket_order_id": "", "sl_order_id": "", "tp_order_id": ""},
            payload={"partial_exit": {"sold": withdrawn.sold, "proceeds_per_share": withdrawn.proceeds},
                     "orders": [order_summary(order) for order in withdrawn.orders]}, **who)
        if as_part:
            part_row_create(trade, quantity=withdrawn.sold, proceeds=withdrawn.proceeds, at=timezone.now(),
                            reason=ExitPartReason.EXIT_LEG)
    return trade


def bracket_restore(*, trade: PaperTrade, broker: BrokerProvider, quantity: int, why: TradeError,
                    **who) -> tuple[PaperTrade, BrokerError | None]:
    """The bracket was cancelled and what should have followed it failed (`why`): place the
    trade's bracket again and keep the trade OPEN. Returns the trade and, if even that failed,
    the broker's error: the trade is then marked, its position unprotected."""
    try:
        order = place_bracket(broker, *exit_requests(trade, quantity=quantity, sl=trade.sl_price, tp=trade.tp_price))
    except BrokerError as restore_error:
        trade = trade_transition(
            trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ATTENTION_NEEDED,
            changes={"attention_reason": "Position unprotected: the bracket was cancelled and could not be placed "
                                         f"again ({restore_error})"[:255],
                     "bracket_order_id": "", "sl_order_id": "", "tp_order_id": ""},
            payload={"error": why.code, "restore_error": str(restore_error)}, **who,
        )
        return trade, restore_error
    trade = trade_transition(
        trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ORDER_PLACED, changes=bracket_ids(order),
        payload={"restored": True, "error": why.code, "order": order_summary(order)}, **who,
    )
    return trade, None


# --- Closing ----------------------------------------------------------------------------------


def trade_close(
    *, user: AbstractBaseUser, trade_id: int, version: int, market: Market | None = None
) -> TradeResult:
    """Close an OPEN trade at market. Raises PaperTrade.DoesNotExist (another user's trade is
    missing too), InvalidTransition, or a broker configuration error before anything changes."""
    market = market or default_market()
    who = {"actor": Actor.USER, "actor_user": user, "actor_label": "close"}
    with about_trade(trade_id):
        # A trader's close is theirs, even after an exit policy's close ended unfilled.
        return _close(user=user, trade_id=trade_id, version=version, market=market, who=who,
                      changes={"exit_request_reason": ""})


def trade_policy_close(*, user: AbstractBaseUser, trade_id: int, version: int, reason: str, because: dict,
                       market: Market | None = None) -> TradeResult:
    """Close an OPEN trade at market because its exit policy says so (a time stop, the stock's
    trailing level): the manual close's steps, by the system. The reason stays on the trade, so
    the sell's fill closes it as that reason; the version makes a second request a conflict, so
    a policy's close is asked for once."""
    market = market or default_market()
    who = {"actor": Actor.SYSTEM, "actor_label": "exit-policy"}
    with about_trade(trade_id):
        return _close(user=user, trade_id=trade_id, version=version, market=market, who=who,
                      changes={"exit_requested_at": market.now(), "exit_request_reason": reason},
                      payload={"exit_policy": because})


def trade_net_exit_close(*, user: AbstractBaseUser, trade_id: int, version: int, reason: str, because: dict,
                         market: Market | None = None) -> TradeResult:
    """Close an OPEN multi-leg trade whose held mark crossed its stop or target (`reason` SL_HIT or
    TP_HIT): the monitor is a spread's bracket (docs/spreads.md). The manual close's steps, by the
    system, with the trade's version: a close already under way is a conflict, never a second order.
    The reason stays on the trade, so the closing order's fill closes it as that reason."""
    market = market or default_market()
    who = {"actor": Actor.SYSTEM, "actor_label": "net-exit"}
    with about_trade(trade_id):
        return _close(user=user, trade_id=trade_id, version=version, market=market, who=who,
                      changes={"exit_requested_at": market.now(), "exit_request_reason": reason},
                      payload={"net_exit": because})


def _close(*, user: AbstractBaseUser, trade_id: int, version: int, market: Market, who: dict,
           changes: dict | None = None, payload: dict | None = None) -> TradeResult:
    with tenancy.acting_as(user.pk):
        trade = PaperTrade.objects.get(owner=user, pk=trade_id)
        broker = broker_of(account_settings_for(user=user), mode=trade.broker_mode, market=market)
        try:
            trade = trade_transition(trade_id=trade.pk, to=TradeStatus.CLOSING, expected_version=version,
                                     changes={"close_in_flight_since": timezone.now(), "close_order_id": "",
                                              **(changes or {})},
                                     payload=payload, **who)
        except VersionConflict as error:
            return conflict_refused(trade=trade, error=error, user=user, action="close", sent_version=version,
                                    who=who)
    # CLOSING has committed (unless the caller holds a transaction open): a second close is refused
    # from here on without waiting, and the steps below always have a trade that expects them.
    with tenancy.acting_as(user.pk):
        return close_at_broker(trade=trade, broker=broker, **who)


# A close's broker phase holds this per-trade lease, so a close request and the monitor's resume
# never sell side by side. Longer than the phase's worst case (a few broker calls, each with its
# timeouts, retries and rate-limit waits: about a minute apiece); a process that dies holding it
# delays the monitor's resume by at most this much.
CLOSE_LEASE_TTL = timedelta(minutes=10)


def _lease_key(trade_id: int) -> str:
    return f"close-lease:{trade_id}"


@contextmanager
def _close_lease(trade_id: int) -> Iterator[bool]:
    """Yields whether this caller holds the trade's close lease (False: another close has it)."""
    token = uuid.uuid4().hex
    held = cache.add(_lease_key(trade_id), token, timeout=int(CLOSE_LEASE_TTL.total_seconds()))
    try:
        yield held
    finally:
        if held and cache.get(_lease_key(trade_id)) == token:
            cache.delete(_lease_key(trade_id))


# The lease is the trade's: requests that withdraw or re-price its working orders take it too
# (`working`), and the monitor's order sync leaves a trade alone while it is held.
trade_order_lease = _close_lease


def close_in_progress(*, trade_id: int) -> bool:
    """A close (a request's, or the monitor's resume) is at the broker for this trade now."""
    return cache.get(_lease_key(trade_id)) is not None


def closes_in_progress(trade_ids: Iterable[int]) -> set[int]:
    """Which of these trades a close (or another request working their orders) holds the lease of
    now: `close_in_progress` for many trades in one round trip (an MGET), so that the monitor's
    order sync asks once a cycle, not once a trade. A lease taken after this answer is not in it:
    callers that act on a trade later ask `close_in_progress` again right before acting."""
    keys = {_lease_key(trade_id): trade_id for trade_id in trade_ids}
    if not keys:
        return set()
    return {keys[key] for key, token in cache.get_many(list(keys)).items() if token is not None}


def close_at_broker(*, trade: PaperTrade, broker: BrokerProvider, **who) -> TradeResult:
    """Steps 2-4 of a close (the module's docstring), for a CLOSING trade that has no sell, under
    the trade's close lease: if another close holds it, that one finishes and nothing is sent."""
    with _close_lease(trade.pk) as ours:
        if not ours:
            return TradeResult(trade)
        return _close_steps(trade=trade, broker=broker, who=who)


def _close_steps(*, trade: PaperTrade, broker: BrokerProvider, who: dict) -> TradeResult:
    if is_multi_leg(trade):  # no bracket to withdraw: one multileg order closes every leg
        return spread_close_steps(trade=trade, broker=broker, who=who)
    refused: list[BrokerError] = []
    withdrawn = bracket_withdraw(trade=trade, broker=broker, refused=refused, **who)
    if withdrawn is None:  # the bracket may still work: selling now could double the exit
        forbidden = next((error for error in refused if isinstance(error, BrokerForbidden)), None)
        reason = ("The broker forbids this account to trade (403): nothing was sold." if forbidden is not None
                  else "The bracket could not be cancelled; nothing was sold.")
        trade = trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ORDER_REJECTED,
                                 changes={"status_reason": reason}, **who)
        if forbidden is not None:  # not an outage: asking again will not help until the account is fixed
            broker_trouble_record(account=account_settings_for(user=trade.owner), mode=trade.broker_mode,
                                  error=forbidden, at=timezone.now())
            return TradeResult(trade, CloseForbidden(CLOSE_FORBIDDEN_TOLD, trade=trade))
        return TradeResult(trade, BrokerDown(
            "The broker could not cancel the SL/TP bracket, so nothing was sold: try again.", trade=trade))
    if not withdrawn.known:  # the bracket may be gone or working: the close stays due, the monitor retries it
        trade = trade_transition(
            trade_id=trade.pk, to=TradeStatus.CLOSING, kind=EventKind.ATTENTION_NEEDED,
            changes={"attention_reason": "The broker answered neither the bracket's cancel nor a read of it; "
                                         "the monitor tries the close again.", **REQUEST_ENDED}, **who)
        return TradeResult(trade, BrokerDown(
            "The broker did not answer the cancel of the SL/TP bracket: nothing was sold, and the close is "
            "retried by the monitor.", trade=trade))
    if withdrawn.exit_fill is not None:  # the broker sold at the SL/TP first: that is the close
        return TradeResult(exit_fill_close(trade=trade, exit_fill=withdrawn.exit_fill, **who))
    if not withdrawn.final:
        trade = trade_transition(
            trade_id=trade.pk, to=TradeStatus.CLOSING, kind=EventKind.ATTENTION_NEEDED,
            changes={"attention_reason": "Waiting for the broker to confirm the bracket's cancel; "
                                         "the monitor sells once it has.", **REQUEST_ENDED},
            payload={"orders": [order_summary(order) for order in withdrawn.orders]}, **who)
        return TradeResult(trade)
    trade = exit_fills_record(trade=trade, withdrawn=withdrawn, **who)
    held = trade.held_qty
    if held <= 0:  # the legs sold everything between them, in parts: nothing is left to sell
        return TradeResult(sold_in_parts_close(trade=trade, withdrawn=withdrawn, **who))
    try:
        sell = broker.place_order(close_request(trade, quantity=held))
    except BrokerError as error:
        return sell_failed(trade, error, broker, held, who)
    return TradeResult(close_confirm(trade_id=trade.pk, sell=sell, changes={"close_order_id": sell.id}, **who))


def close_resume(*, trade: PaperTrade, broker: BrokerProvider, **who) -> TradeResult:
    """Finish a close the process left half done: a CLOSING trade with no sell at the broker
    (the monitor has looked it up by id and by tag). Steps 2-4 again: cancelling a bracket that
    is already cancelled answers its final state, so repeating them is safe."""
    with about_trade(trade.pk):
        return close_at_broker(trade=trade, broker=broker, **who)


def close_confirm(*, trade_id: int, sell: Order, changes: dict | None = None, **who) -> PaperTrade:
    """Record the state of a CLOSING trade's sell order: filled → CLOSED with MANUAL_CLOSE at the
    fill price; still working → stays CLOSING. (The monitor calls this when the fill arrives.)"""
    if sell.order_class in SPREAD_CLASSES or is_multi_leg(PaperTrade.objects.get(pk=trade_id)):
        # A multi-leg trade's closing order, its legs' fills (one leg left: a single-option order).
        return spread_close_confirm(trade_id=trade_id, order=sell, changes=changes, **who)
    changes = dict(changes or {})
    payload = {"order": order_summary(sell)}
    if sell.status == OrderStatus.FILLED and sell.fill is not None:
        trade = PaperTrade.objects.get(pk=trade_id)
        changes.update(close_outcome(trade, price=sell.fill.price, at=sell.fill.at or timezone.now(),
                                     reason=trade.exit_request_reason or CloseReason.MANUAL_CLOSE))
        return trade_transition(trade_id=trade_id, to=TradeStatus.CLOSED, kind=EventKind.ORDER_FILLED,
                                changes=changes, payload=payload, **who)
    if sell.status.is_final:  # refused, cancelled or expired unfilled: the position is still held
        # The id goes with it (the event keeps it): a later close's sell is known by its own id or
        # tag, never mistaken for this one, which ended.
        changes["close_order_id"] = ""
        changes["status_reason"] = f"The close order was {sell.status.value}: {sell.reason or ''}".strip()[:255]
        changes["attention_reason"] = ("The close order ended unfilled and the bracket was cancelled before it: "
                                       "the position is unprotected. Adjust the bracket or close again.")
        return trade_transition(trade_id=trade_id, to=TradeStatus.OPEN, kind=EventKind.ORDER_CANCELED,
                                changes=changes, payload=payload, **who)
    return trade_transition(trade_id=trade_id, to=TradeStatus.CLOSING, kind=EventKind.ORDER_PLACED,
                            changes={**changes, **REQUEST_ENDED}, payload=payload, **who)


def sold_in_parts_close(*, trade: PaperTrade, withdrawn: Withdrawal, **who) -> PaperTrade:
    """The exit legs' partial fills (stored: `exit_fills_record`) sold the whole position between
    them: no single fill is the close, and a sell would go short. The trade closes at the
    quantity-weighted average of those fills, as a take-profit if that is above the entry and as
    a stop-loss otherwise (the reason must be one; the event lists every order)."""
    reason = CloseReason.TP_HIT if trade.exit_filled_price >= trade.entry_price else CloseReason.SL_HIT
    changes = close_outcome(trade, price=trade.exit_filled_price, at=timezone.now(), reason=reason)
    return trade_transition(
        trade_id=trade.pk, to=TradeStatus.CLOSED, kind=EventKind.ORDER_FILLED, changes=changes,
        payload={"source": BROKER_FILL, "sold_in_parts": True,
                 "orders": [order_summary(order) for order in withdrawn.orders]}, **who)


def sell_failed(trade: PaperTrade, error: BrokerError, broker: BrokerProvider, held: int,
                 who: dict) -> TradeResult:
    problem = as_trade_error(error, trade=trade)
    if was_not_placed(error):  # nothing was sold and the bracket is gone: put it back
        trade, restore_error = bracket_restore(trade=trade, broker=broker, quantity=held, why=problem, **who)
        if restore_error is not None:
            problem = PositionUnprotected(
                f"{problem.message} The SL/TP bracket, cancelled before the sell, could not be placed again "
                f"({restore_error}): the position has no exit at the broker, act now.")
        problem.trade = trade
        return TradeResult(trade, problem)
    trade = trade_transition(
        trade_id=trade.pk, to=TradeStatus.CLOSING, kind=EventKind.ATTENTION_NEEDED,
        changes={"attention_reason": f"Close order outcome unknown, reconcile by its tag: {error}"[:255],
                 **REQUEST_ENDED},
        payload={"error": problem.code}, **who,
    )
    problem.trade = trade
    return TradeResult(trade, problem)


def exit_fill_close(*, trade: PaperTrade, exit_fill: ExitFill, close_order: Order | None = None,
                    **who) -> PaperTrade:
    """Close a trade as TP_HIT/SL_HIT at the broker's fill of its exit leg: the one way a bracket
    fill becomes the trade's outcome, whoever saw it first (the close, the adjust, expiry, the
    monitor). `trigger_precision` is fill minus trigger, per share."""
    fill = exit_fill.leg.fill
    changes = close_outcome(trade, price=fill.price, at=fill.at or timezone.now(), reason=exit_fill.reason)
    changes.update(broker_fill_price=fill.price, broker_fill_time=fill.at,
                   trigger_precision=(fill.price - exit_fill.trigger) if exit_fill.trigger is not None else None)
    payload = {"order": order_summary(exit_fill.leg), "source": BROKER_FILL}
    if close_order is not None:
        payload["close_order"] = order_summary(close_order)
    return trade_transition(trade_id=trade.pk, to=TradeStatus.CLOSED, kind=EventKind.ORDER_FILLED,
                            expected_version=trade.version, changes=changes, payload=payload, **who)


def trade_exit_filled(*, trade: PaperTrade, exit_fill: ExitFill, close_order: Order | None,
                      broker: BrokerProvider, **who) -> PaperTrade:
    """The monitor saw an exit leg's fill. A sell of a close still working beside it (a close
    placed before closes withdrew the bracket first) lost the race: it is cancelled first."""
    if trade.status == TradeStatus.CLOSING and close_order is not None and close_order.status.is_working:
        close_order = broker.cancel_order(close_order.id)
    return exit_fill_close(trade=trade, exit_fill=exit_fill, close_order=close_order, **who)


# --- Expiry -----------------------------------------------------------------------------------


def trade_expiry_settle(*, trade: PaperTrade, broker: BrokerProvider, value: Decimal, cutoff: datetime,
                        payload: dict, **who) -> str | None:
    """Settle a held trade whose contract reached its expiry cutoff, at `value` per share. An
    exit leg or a close's sell that filled before the cutoff is the outcome instead (at its
    fill). Contracts an exit leg sold in part are booked at their fill, and only what is still
    held settles at `value`. Returns the close reason, or None when it must wait: the broker
    could not say how the trade's orders ended, or says an exit leg still works (booking an
    expiry over a fill we cannot see, or one still to come, would be wrong)."""
    withdrawn = bracket_withdraw(trade=trade, broker=broker, **who)
    if withdrawn is None or not withdrawn.known:
        return None
    if withdrawn.exit_fill is not None:
        return exit_fill_close(trade=trade, exit_fill=withdrawn.exit_fill, **who).close_reason
    if not withdrawn.final:  # the cancel is not finished: the next cycle asks again
        return None
    trade = exit_fills_record(trade=trade, withdrawn=withdrawn, **who)
    if trade.held_qty <= 0:  # the legs sold everything in parts: there is nothing left to expire
        return sold_in_parts_close(trade=trade, withdrawn=withdrawn, **who).close_reason
    if trade.close_order_id:
        try:
            sell = broker.cancel_order(trade.close_order_id)
        except BrokerError:
            return None
        if sell.status == OrderStatus.FILLED and sell.fill is not None:
            return close_confirm(trade_id=trade.pk, sell=sell, **who).close_reason
    reason = CloseReason.EXPIRED_ITM if value > 0 else CloseReason.EXPIRED
    changes = close_outcome(trade, price=value, at=cutoff, reason=reason)
    trade_transition(trade_id=trade.pk, to=TradeStatus.CLOSED, kind=EventKind.STATE_CHANGE,
                     expected_version=trade.version, changes=changes,
                     payload={"source": EXPIRY, "intrinsic": value, **payload}, **who)
    return str(reason)
