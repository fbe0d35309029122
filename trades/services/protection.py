"""Keeping held positions protected: a filled position gets its SL/TP bracket, and keeps trying
until it has one.

A bracket that cannot be attached after a fill (the broker down, throttled, refusing for a
moment) used to leave the trade marked for attention and nothing else. Now every order cycle
hands such a trade here (`bracket_protect`), and:

- a working bracket the broker lists under the trade's stop-loss tag (`to-<id>-sl`) is adopted,
  never doubled: placement is idempotent by tag, so an attempt whose answer was lost is found
  again, not placed twice;
- otherwise a new bracket is placed, at most once per backoff step (one minute, doubling up to
  fifteen), so a broker in trouble is not hammered every cycle by every unprotected trade;
- each failed attempt is written to the trade's log (without bumping its version: the trader's
  open page must not hit a conflict because the monitor tried again); success clears the
  attention reason and the trade stops being shown as UNPROTECTED;
- a broker that refuses the bracket three times in a row (no position to sell, say) is not
  asked again until the trade changes: the attention reason tells the trader to act.

The backoff schedule lives in the cache: losing it costs one early retry, never a double order.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.core.cache import cache

from brokers.base import BrokerError, BrokerProvider, Order, OrderRejected
from trades.models import EventKind, PaperTrade, TradeStatus

from .lifecycle import event_record, trade_transition
from .orders import as_trade_error, bracket_ids, exit_requests, order_summary, place_bracket

logger = logging.getLogger(__name__)

UNPROTECTED = "Position unprotected: no SL/TP bracket at the broker"
FIRST_RETRY = timedelta(minutes=1)
LONGEST_RETRY = timedelta(minutes=15)
REFUSALS_BEFORE_GIVING_UP = 3
_SCHEDULE_TTL = 3 * 24 * 60 * 60


def bracket_attach(*, trade: PaperTrade, broker: BrokerProvider, at: datetime, **who) -> PaperTrade:
    """Protect a freshly filled position with its SL/TP as one OCO. If that fails (after a retry),
    the trade stays OPEN, marked for attention as unprotected, and the order cycle tries again
    with backoff (`bracket_protect`)."""
    sl, tp = exit_requests(trade, quantity=trade.held_qty, sl=trade.sl_price, tp=trade.tp_price)
    try:
        order = place_bracket(broker, sl, tp)
    except BrokerError as error:
        return _failed(trade, error, at, who, first=True)
    _forget(trade.pk)
    return trade_transition(trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ORDER_PLACED,
                            changes=bracket_ids(order), payload={"order": order_summary(order)}, **who)


def bracket_protect(*, trade: PaperTrade, broker: BrokerProvider, listed: Order | None, at: datetime,
                    trading_ends: datetime, **who) -> PaperTrade:
    """Give an OPEN position without a bracket one: adopt `listed` (the order the broker lists
    under the trade's stop-loss tag) if it is working, or else place one when the backoff says
    it is time. Once the contract has stopped trading (`trading_ends`) no order is placed:
    expiry settlement takes over. Returns the trade as it now stands (unchanged if nothing
    was due)."""
    if not needs_bracket(trade):
        return trade
    if listed is not None and listed.status.is_working:
        _forget(trade.pk)
        return trade_transition(
            trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ORDER_PLACED, expected_version=trade.version,
            changes={**bracket_ids(listed), **_cleared(trade)}, payload={"order": order_summary(listed),
                                                                         "adopted": True}, **who)
    if at >= trading_ends:
        return trade
    schedule = cache.get(_key(trade.pk)) or {}
    if schedule.get("given_up_at") == trade.version or (
            schedule.get("due") and at < datetime.fromisoformat(schedule["due"])):
        return trade
    sl, tp = exit_requests(trade, quantity=trade.held_qty, sl=trade.sl_price, tp=trade.tp_price)
    try:
        order = place_bracket(broker, sl, tp)
    except BrokerError as error:
        return _failed(trade, error, at, who, first=False)
    _forget(trade.pk)
    logger.info("protection: trade %s has its bracket again (%s)", trade.pk, order.id)
    return trade_transition(
        trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ORDER_PLACED, expected_version=trade.version,
        changes={**bracket_ids(order), **_cleared(trade)}, payload={"order": order_summary(order),
                                                                    "reattached": True}, **who)


def _failed(trade: PaperTrade, error: BrokerError, at: datetime, who: dict, *, first: bool) -> PaperTrade:
    """Write down a failed attempt and when the next is due. The first failure marks the trade;
    later ones are events only (the trader's version stays). Refused REFUSALS_BEFORE_GIVING_UP
    times in a row, the monitor stops and the attention reason says so, until the trade changes
    (an adjustment): the broker has said no, and asking every quarter hour will not change it."""
    schedule = _attempt_failed(trade.pk, at, refused=isinstance(error, OrderRejected))
    payload = {"error": as_trade_error(error).code, "detail": str(error)[:255],
               "bracket_attempt": schedule["failures"], "next_attempt_at": schedule["due"]}
    logger.warning("protection: trade %s is unprotected after attempt %s: %s", trade.pk, schedule["failures"], error)
    if schedule["refusals"] >= REFUSALS_BEFORE_GIVING_UP:
        reason = (f"{UNPROTECTED}: the broker refused it {schedule['refusals']} times ({error.reason}). "
                  "Adjust the bracket to place one.")
        trade = trade_transition(
            trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ATTENTION_NEEDED,
            expected_version=None if first else trade.version, changes={"attention_reason": reason[:255]},
            payload={**payload, "next_attempt_at": None, "gave_up": True}, **who)
        cache.set(_key(trade.pk), {**schedule, "given_up_at": trade.version}, _SCHEDULE_TTL)
        return trade
    if first:
        return trade_transition(
            trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ATTENTION_NEEDED,
            changes={"attention_reason": f"{UNPROTECTED} ({error}); the monitor keeps trying."[:255]},
            payload=payload, **who)
    event_record(trade=trade, kind=EventKind.ATTENTION_NEEDED, old_status=trade.status, new_status=trade.status,
                 payload=payload, **who)
    return trade


def bracket_lost(*, trade: PaperTrade, orders: list[Order], **who) -> PaperTrade:
    """The OPEN trade's recorded bracket has ended at the broker (`orders`, as the broker reports
    them) without a fill that closes the trade: cancelled (by hand, or by an adjust or a close
    that could not record what followed), expired or refused. The position is bare: contracts its
    legs sold in part are stored, the bracket is forgotten and the trade marked UNPROTECTED, so
    `bracket_protect` adopts the bracket listed under the trade's tag or places one, as for any
    unprotected position. Legs that sold everything between them close the trade at their fills."""
    # closing imports opening, which imports this module for `bracket_attach`: imported here.
    from .closing import exit_fills_record, sold_in_parts_close, withdrawal_of

    withdrawn = withdrawal_of(orders)
    trade = exit_fills_record(trade=trade, withdrawn=withdrawn, **who)
    if trade.held_qty <= 0:
        return sold_in_parts_close(trade=trade, withdrawn=withdrawn, **who)
    status = next((order.status.value for order in orders), "ended")
    return trade_transition(
        trade_id=trade.pk, to=TradeStatus.OPEN, kind=EventKind.ATTENTION_NEEDED, expected_version=trade.version,
        changes={"bracket_order_id": "", "sl_order_id": "", "tp_order_id": "",
                 "attention_reason": f"{UNPROTECTED}: the SL/TP bracket is {status} at the broker; "
                                     "the monitor places it again."[:255]},
        payload={"orders": [order_summary(order) for order in orders]}, **who)


def needs_bracket(trade: PaperTrade) -> bool:
    """The model's rule (`PaperTrade.unprotected`), named for the order cycle."""
    return trade.unprotected


# What the attention reason of an unprotected position starts with: ours, a failed adjustment's
# (`brackets`), and the wording of trades marked before the monitor retried.
_UNPROTECTED_REASONS = ("Position unprotected", "The position has no SL/TP bracket")


def _cleared(trade: PaperTrade) -> dict:
    """The attention reason goes once the bracket is there, unless it says something else."""
    return {"attention_reason": ""} if trade.attention_reason.startswith(_UNPROTECTED_REASONS) else {}


# --- the backoff schedule ------------------------------------------------------------------------


def _key(trade_id: int) -> str:
    return f"bracket-retry:{trade_id}"


def _attempt_failed(trade_id: int, at: datetime, *, refused: bool) -> dict:
    """Count a failed attempt (and the broker's refusals in a row) and schedule the next: 1, 2, 4,
    8 minutes, then every 15."""
    schedule = cache.get(_key(trade_id)) or {}
    failures = schedule.get("failures", 0) + 1
    delay = min(FIRST_RETRY * 2 ** min(failures - 1, 4), LONGEST_RETRY)
    schedule = {"failures": failures, "refusals": schedule.get("refusals", 0) + 1 if refused else 0,
                "due": (at + delay).isoformat()}
    cache.set(_key(trade_id), schedule, _SCHEDULE_TTL)
    return schedule


def _forget(trade_id: int) -> None:
    cache.delete(_key(trade_id))
