"""Moving a trade's stop-loss and take-profit (seed Scenarios C and D).

A bracket is one OCO at the broker, so an adjustment is: cancel it and read how its legs ended
(`bracket_withdraw`), then place the new one. Never the other way round: a new bracket beside a
working one could sell the contracts twice, and a broker that refuses sells of contracts already
committed to working orders would refuse it. A leg that filled before the cancel closes the trade
at that fill instead. The dangerous moment is in between, one broker round trip when the position
has no exit at all: if the new OCO cannot be placed (after one retry), the old one is put back;
if even that fails, the trade is marked for attention and the answer says the position is
unprotected. Each outcome is in the audit log (docs/reliability.md, section 7).
"""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache

from brokers.base import (
    BrokerError,
    Order,
    StopModifyOutcomeUnknown,
    StopModifyRefused,
    modify_stop,
)
from brokers.market import Market, default_market
from tradeoptions import tenancy
from trades.models import Actor, EventKind, PaperTrade, StrategyType, TradeStatus

from .accounts import account_settings_for
from .closing import (
    bracket_restore,
    bracket_withdraw,
    conflict_refused,
    exit_fill_close,
    exit_fills_record,
    sold_in_parts_close,
)
from .errors import (
    BracketReplaceFailed,
    BracketWouldFill,
    BrokerDown,
    BrokerOutcomeUnknown,
    InvalidTradeInput,
    InvalidTransition,
    PositionUnprotected,
    TradeError,
    VersionConflict,
    price_text,
)
from .exit_policies import exit_policy_checked
from .lifecycle import event_record, trade_transition
from .opening import TradeResult
from .orders import (
    as_trade_error,
    bracket_ids,
    broker_of,
    exit_requests,
    order_summary,
    place_bracket,
    split_legs,
)


def brackets_adjust(
    *,
    user: AbstractBaseUser,
    trade_id: int,
    version: int,
    new_sl: Decimal | None = None,
    new_tp: Decimal | None = None,
    allow_immediate: bool = False,
    market: Market | None = None,
    because: dict | None = None,
) -> TradeResult:
    """Replace an OPEN trade's SL and/or TP. Refusals before the broker is touched raise
    (PaperTrade.DoesNotExist, InvalidTradeInput, BracketWouldFill, InvalidTransition); what
    happens at the broker is returned, with the trade as it now stands.

    `because`: the exit policy's move of the stop (`exit_policies_apply`), not the trader's:
    the system is the actor, and the audit event carries the policy and the quote that moved it."""
    if new_sl is None and new_tp is None:
        raise InvalidTradeInput({"new_sl": ["Give a new stop-loss, or a new take-profit."],
                                 "new_tp": ["Give a new take-profit, or a new stop-loss."]})
    market = market or default_market()
    who = ({"actor": Actor.SYSTEM, "actor_label": "exit-policy"} if because is not None
           else {"actor": Actor.USER, "actor_user": user, "actor_label": "adjust"})
    with tenancy.acting_as(user.pk):
        trade = PaperTrade.objects.select_for_update().get(owner=user, pk=trade_id)
        if trade.version != version:
            return _stale(trade, user=user, version=version, action="adjust", who=who)
        if trade.status != TradeStatus.OPEN:
            raise InvalidTransition(f"Only an OPEN trade's bracket can be adjusted; this one is {trade.status}.",
                                    trade=trade)
        if trade.part_pending_qty:
            raise InvalidTransition("A part of this position is being sold: adjust the bracket in a moment, once "
                                    "the rest is under its new bracket.", trade=trade)
        sl = new_sl if new_sl is not None else trade.sl_price
        tp = new_tp if new_tp is not None else trade.tp_price
        _validate(trade, sl=sl, tp=tp, new_sl=new_sl, new_tp=new_tp, allow_immediate=allow_immediate, market=market)
        broker = broker_of(account_settings_for(user=user), mode=trade.broker_mode, market=market)

        withdrawn = bracket_withdraw(trade=trade, broker=broker, **who)
        if withdrawn is None:
            return TradeResult(trade, BracketReplaceFailed(
                "The broker could not cancel the current bracket; nothing was changed.", trade=trade))
        if not withdrawn.known:  # if it was cancelled after all, the monitor sees it ended and re-protects
            return TradeResult(trade, BracketReplaceFailed(
                "The broker did not answer the cancel of the current bracket; nothing new was placed. "
                "Should it turn out cancelled, the monitor places the bracket again.", trade=trade))
        if withdrawn.exit_fill is not None:  # the old bracket sold first: that is the trade's close
            trade = exit_fill_close(trade=trade, exit_fill=withdrawn.exit_fill, **who)
            return TradeResult(trade, InvalidTransition(
                "A bracket leg filled before the change arrived: the trade is closed at that fill.", trade=trade))
        if not withdrawn.final:  # a leg may still fill: a second bracket beside it could double the exit
            return TradeResult(trade, BracketReplaceFailed(
                "The broker has not confirmed the current bracket's cancel; nothing new was placed.", trade=trade))
        trade = exit_fills_record(trade=trade, withdrawn=withdrawn, **who)
        held = trade.held_qty
        if held <= 0:  # partial fills of the old legs sold everything: that is the trade's close
            trade = sold_in_parts_close(trade=trade, withdrawn=withdrawn, **who)
            return TradeResult(trade, InvalidTransition(
                "The bracket's legs sold the whole position in partial fills before the change arrived: "
                "the trade is closed at those fills.", trade=trade))
        old = {"sl_price": trade.sl_price, "tp_price": trade.tp_price}
        try:
            order = place_bracket(broker, *exit_requests(trade, quantity=held, sl=sl, tp=tp))
        except BrokerError as error:
            return _restore(trade, broker, error, held, who)
        trade = trade_transition(
            trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.BRACKET_ADJUSTED, expected_version=trade.version,
            changes={"sl_price": sl, "tp_price": tp, "attention_reason": "", **bracket_ids(order),
                     **({"exit_stop_moved_at": market.now()} if because is not None
                        else {"override_count": trade.override_count + 1})},
            payload={"from": old, "to": {"sl_price": sl, "tp_price": tp}, "allow_immediate": allow_immediate,
                     "order": order_summary(order), **({"exit_policy": because} if because is not None else {})},
            **who,
        )
        return TradeResult(trade)


def _stale(trade: PaperTrade, *, user: AbstractBaseUser, version: int, action: str,
           who: dict | None = None) -> TradeResult:
    """The client's version is not the trade's: refused, with the trade as it now stands."""
    conflict = VersionConflict(
        f"The trade changed since you loaded it (your version {version}, now {trade.version}).", trade=trade
    )
    return conflict_refused(trade=trade, error=conflict, user=user, action=action, sent_version=version, who=who)


def _validate(trade, *, sl, tp, new_sl, new_tp, allow_immediate: bool, market: Market) -> None:
    errors: dict[str, list[str]] = {}
    for name, value in (("new_sl", new_sl), ("new_tp", new_tp)):
        if value is not None and value <= 0:
            errors[name] = ["Must be greater than zero."]
    if not errors and sl >= tp:
        errors["new_sl" if new_sl is not None else "new_tp"] = [
            f"The stop-loss ({price_text(sl)}) must be below the take-profit ({price_text(tp)})."]
    if errors:
        raise InvalidTradeInput(errors)
    quote = market.quotes([trade.option_symbol]).get(trade.option_symbol)
    bid = quote.bid if quote is not None and quote.bid is not None else trade.current_bid
    if bid is None or allow_immediate:
        return
    if new_sl is not None and new_sl >= bid:
        raise BracketWouldFill(
            f"A stop-loss at {price_text(new_sl)} is at or above the bid ({price_text(bid)}): it would fire at once, "
            "so it was not moved.", field="new_sl")
    if new_tp is not None and new_tp <= bid:
        raise BracketWouldFill(
            f"A take-profit at {price_text(new_tp)} is at or below the bid ({price_text(bid)}): it would fill at "
            "once, so it was not moved.", field="new_tp")


def _restore(trade: PaperTrade, broker, error: BrokerError, held: int, who: dict) -> TradeResult:
    """The old bracket is cancelled and the new one failed: put the old one back, or say loudly
    that the position is unprotected."""
    trade, restore_error = bracket_restore(trade=trade, broker=broker, quantity=held, why=as_trade_error(error),
                                           **who)
    if restore_error is not None:
        return TradeResult(trade, PositionUnprotected(
            f"The new bracket failed ({error}) and the old one could not be restored ({restore_error}). "
            "The position has no stop-loss or take-profit at the broker: act now.", trade=trade))
    return TradeResult(trade, BracketReplaceFailed(
        f"The new bracket could not be placed ({error}); the previous one was restored.", trade=trade))


def exit_policy_set(*, user: AbstractBaseUser, trade_id: int, version: int, policy) -> TradeResult:
    """Give a PENDING or OPEN trade a new exit policy (an empty one removes it). Nothing at the
    broker changes now: the monitor's next look applies it. Its high-water marks start again
    from the next quote, since they are the best prices seen under *this* policy; the stop in
    force stays (it never loosens). A close the old policy asked for and that ended with the
    trade still open is forgotten: the new policy may ask again.
    Raises InvalidTradeInput, InvalidTransition, DoesNotExist."""
    checked = exit_policy_checked(policy)
    with tenancy.acting_as(user.pk):
        trade = PaperTrade.objects.select_for_update().get(owner=user, pk=trade_id)
        if checked.get("scale_out_pct") is not None:  # on the contracts held (or bought, before the fill)
            exit_policy_checked(policy, quantity=trade.held_qty or trade.qty)
        if trade.strategy_type != StrategyType.SINGLE:  # a spread's policy follows its held price only
            exit_policy_checked(policy, multi_leg=True)
        if trade.version != version:
            return _stale(trade, user=user, version=version, action="exit-policy")
        if trade.status not in (TradeStatus.PENDING, TradeStatus.OPEN):
            raise InvalidTransition(f"Only a pending or open trade's exit policy can change; this one is "
                                    f"{TradeStatus(trade.status).label.lower()}.", trade=trade)
        trade = trade_transition(
            trade_id=trade.pk, to=trade.status, kind=EventKind.BRACKET_ADJUSTED, expected_version=trade.version,
            changes={"exit_policy": checked, "exit_high_water": None, "exit_underlying_extreme": None,
                     "exit_requested_at": None, "exit_request_reason": ""},
            payload={"exit_policy": {"from": trade.exit_policy, "to": checked}},
            actor=Actor.USER, actor_user=user, actor_label="exit-policy",
        )
        return TradeResult(trade)


def stop_move_in_place(*, user: AbstractBaseUser, trade_id: int, version: int, new_sl: Decimal, because: dict,
                       market: Market | None = None) -> TradeResult | None:
    """Move an OPEN trade's stop where it rests (the broker's modify), for its exit policy: one
    request instead of a cancel and a placement, and the position never without its exit. None:
    the broker cannot here (no modify, or it refused with the old stop still working; after a
    refusal the account's moves skip the modify for MODIFY_REFUSED_KEPT_FOR), so the caller
    cancels and replaces (`brackets_adjust`). A spent modification budget or a broker
    that cannot be reached leave the trade as it is, with the reason: the policy's next look asks
    again.

    A modify whose answer never came (UNCONFIRMED at Tradier: it may or may not have applied, and
    may have replaced the order under a new id) is never followed by a second one sent blind: the
    stop is read back (`_stop_learn`) and what the broker holds, level and id, becomes the trade's.
    Until a read succeeds (the intent is noted before the request, so a process killed in between
    counts too) each look reads again instead of modifying. A stop that had ended is read back as
    well: a broker that replaced it may hold the working one under another id."""
    market = market or default_market()
    with tenancy.acting_as(user.pk):
        trade = PaperTrade.objects.select_for_update().get(owner=user, pk=trade_id)
        stop_order = trade.sl_order_id or trade.bracket_order_id
        if trade.version != version or trade.status != TradeStatus.OPEN or not stop_order or trade.part_pending_qty:
            return TradeResult(trade, VersionConflict("The trade changed since the exit policy looked at it.",
                                                      trade=trade))
        if cache.get(_modify_refused_key(user.pk, trade.broker_mode)) is not None:
            return None  # this broker refused to modify a stop leg of this account: straight to cancel-and-replace
        broker = broker_of(account_settings_for(user=user), mode=trade.broker_mode, market=market)
        if cache.get(_move_intent_key(trade.pk)) is not None:  # an earlier modify's outcome is not known yet
            trade, problem = _stop_learn(trade, broker, because=because, market=market)
            if problem is not None or trade.sl_price >= new_sl:
                return TradeResult(trade, problem)
        stop_order = trade.sl_order_id or trade.bracket_order_id
        cache.set(_move_intent_key(trade.pk), {"order_id": stop_order, "stop": format(new_sl, "f")},
                  MOVE_INTENT_KEPT_FOR)
        try:
            order = modify_stop(broker, stop_order, new_sl)
        except StopModifyOutcomeUnknown:
            trade, problem = _stop_learn(trade, broker, because=because, market=market)
            return TradeResult(trade, problem)
        except StopModifyRefused as refused:
            cache.delete(_move_intent_key(trade.pk))
            if not refused.finalized:  # not asked again for a while: a refused PUT is one request wasted per move
                cache.set(_modify_refused_key(user.pk, trade.broker_mode), refused.reason[:200],
                          MODIFY_REFUSED_KEPT_FOR)
                return None
            trade, problem = _stop_learn(trade, broker, because=because, market=market)
            return TradeResult(trade, problem or InvalidTransition(
                f"The stop had already ended: {refused.reason}.", trade=trade))
        except BrokerError as error:  # a spent budget, a refused token, an outage: nothing was sent or acted on
            cache.delete(_move_intent_key(trade.pk))
            return TradeResult(trade, as_trade_error(error, trade=trade))
        changes = {"sl_price": new_sl, "exit_stop_moved_at": market.now()}
        if trade.sl_order_id and order.id and order.id != trade.sl_order_id:
            # The broker replaced the stop to move it: the trade must point at the working one, or a
            # later close would cancel a dead order and sell beside a live stop.
            changes["sl_order_id"] = order.id
        trade = trade_transition(
            trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.BRACKET_ADJUSTED, expected_version=trade.version,
            changes=changes,
            payload={"from": {"sl_price": trade.sl_price}, "to": {"sl_price": new_sl}, "in_place": True,
                     "order": order_summary(order), "exit_policy": because},
            actor=Actor.SYSTEM, actor_label="exit-policy",
        )
        cache.delete(_move_intent_key(trade.pk))
        return TradeResult(trade)


# A stop move sent and not yet known to have landed is noted here (before the request) until the
# stop is read back. Kept a day: by then the stop has been read, or the trade watched no more.
MOVE_INTENT_KEPT_FOR = 24 * 60 * 60
_WHO = {"actor": Actor.SYSTEM, "actor_label": "exit-policy"}


# A broker that refused to modify a stop in place (UNCONFIRMED at Tradier for an OCO's leg) is not
# asked again for the account's other moves for this long: each would cost a refused request.
MODIFY_REFUSED_KEPT_FOR = 6 * 60 * 60


def _modify_refused_key(owner_id: int, broker_mode: str) -> str:
    return f"stop-modify-refused:{owner_id}:{broker_mode}"


def _move_intent_key(trade_id: int) -> str:
    return f"stop-move-intent:{trade_id}"


def _stop_learn(trade: PaperTrade, broker, *, because: dict, market: Market) -> tuple[PaperTrade, TradeError | None]:
    """Read the stop as the broker holds it after a modify with no answer (or a refusal saying it
    had ended), and make it the trade's: its level (moved or not) and its order id (the broker may
    have replaced it). Unreadable: the trade stays as it was, the audit log says the stop is at
    either level, and the next look reads again, never modifying blind."""
    intent = cache.get(_move_intent_key(trade.pk)) or {}
    asked = intent.get("stop")
    stop = _stop_as_it_stands(broker, trade)
    if stop is None or stop.stop_price is None:
        event_record(trade=trade, kind=EventKind.ATTENTION_NEEDED, old_status=trade.status, new_status=trade.status,
                     payload={"stop_move_unknown": {"order_id": intent.get("order_id"), "asked": asked,
                                                    "stop_price": format(trade.sl_price, "f")},
                              "exit_policy": because}, **_WHO)
        return trade, BrokerOutcomeUnknown(
            f"The broker did not answer the move of the stop to {asked or 'its new level'}, and the stop could not be "
            f"read back: it stands at {price_text(trade.sl_price)} or at the new level. It is read again before any "
            "other move.", trade=trade)
    cache.delete(_move_intent_key(trade.pk))
    if not stop.status.is_working:  # filled or gone: the order sync records how the exit ended
        return trade, InvalidTransition(f"The stop had already ended ({stop.status.value}).", trade=trade)
    changes = {}
    if stop.stop_price != trade.sl_price:
        changes["sl_price"] = stop.stop_price
    if stop.id and stop.id != trade.sl_order_id:
        changes["sl_order_id"] = stop.id
    moved = asked is not None and stop.stop_price == Decimal(asked)
    if moved:
        changes["exit_stop_moved_at"] = market.now()
    trade = trade_transition(
        trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.BRACKET_ADJUSTED if changes else EventKind.STATE_CHANGE,
        expected_version=trade.version, changes=changes,
        payload={"from": {"sl_price": trade.sl_price}, "to": {"sl_price": stop.stop_price}, "in_place": True,
                 "read_back": True, "order": order_summary(stop), "exit_policy": because}, **_WHO)
    if moved:
        return trade, None
    to = f" to {price_text(Decimal(asked))}" if asked is not None else ""
    return trade, BrokerDown(f"The broker did not move the stop{to}: it stands at {price_text(stop.stop_price)}, "
                             "and the next look asks again.", trade=trade)


def _stop_as_it_stands(broker, trade: PaperTrade) -> Order | None:
    """The trade's stop order as the broker reports it now: the stop leg of its bracket (where a
    replaced leg shows its new id), else the stop order itself. None if it cannot be read."""
    try:
        if trade.bracket_order_id:
            _, stop, _ = split_legs(broker.get_order(trade.bracket_order_id))
            return stop
        return broker.get_order(trade.sl_order_id)
    except BrokerError:
        return None
