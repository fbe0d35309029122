"""Orphans: orders of ours still working at the broker that no active trade accounts for.

The order cycle reads the brokers; what to do about what it read is decided here
(`orphans_guard`), for every account alike:
- a working order tagged for one of our trades that is finished (closed, cancelled, rejected)
  is cancelled, and the cancel written to that trade's log;
- a working order tagged for a trade the account does not hold is recorded as an
  ATTENTION_NEEDED event and logged once (not cancelled: we cannot tell whose it is);
- a second working order for an active trade, one it does not know, marks that trade for
  attention.

Tradier lists only today's orders, so a GTC exit left working by a trade that finished in an
earlier session is in no list the cycle reads. `finished_orders_to_read` names the orders of
recently finished trades to read by id (a few per account and cycle, so the reads stay inside
the rate budget); an order seen final is remembered (`finished_order_seen`) and never read
again, so each finished trade costs a read or two once, then nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from django.core.cache import cache

from brokers.base import BrokerError, BrokerProvider, Order, OrderPurpose, parse_order_tag
from brokers.models import BrokerMode
from tradeoptions import tenancy
from trades.models import ACTIVE_STATUSES, Actor, EventKind, PaperTrade

from .errors import InvalidTransition, VersionConflict
from .lifecycle import event_record, trade_transition
from .orders import order_summary, trade_order_ids

logger = logging.getLogger(__name__)

GUARD = {"actor": Actor.SYSTEM, "actor_label": "orphan_guard"}
ORPHAN_NOTE_TTL = 7 * 24 * 60 * 60
# Orders of finished trades read by id, per account and order cycle (a cycle a minute, and the
# smallest Tradier budget is 60 reads a minute, shared with the order list and active trades).
FINISHED_ORDER_READS = 5
_FINAL_TTL = 8 * 24 * 60 * 60  # longer than any trade stays "recently finished"


def orphans_guard(*, owner_id: int, mode: str, orders: Iterable[Order], active: list[PaperTrade],
                  broker: BrokerProvider) -> int:
    """Deal with the working orders tagged by us, among `orders` (one account's, as read), that
    none of its `active` trades accounts for. Returns how many were handled."""
    by_id = {str(trade.pk): trade for trade in active}
    known = {order_id for trade in active for order_id in trade_order_ids(trade)}
    suspects: dict[int, list[Order]] = defaultdict(list)
    strays: list[tuple[PaperTrade, Order]] = []
    for order in orders:
        parsed = parse_order_tag(order.tag)
        if parsed is None or not order.status.is_working or order.id in known:
            continue
        trade_id, _ = parsed
        if trade_id in by_id:
            if not order_is_adopted(by_id[trade_id], order):
                strays.append((by_id[trade_id], order))
        elif trade_id.isdigit():
            suspects[int(trade_id)].append(order)
    if not suspects and not strays:
        return 0
    with tenancy.acting_as(owner_id):
        owned = {trade.pk: trade for trade in PaperTrade.objects.filter(pk__in=list(suspects))}
    handled = 0
    for trade_id, found in suspects.items():
        for order in found:
            trade = owned.get(trade_id)
            if trade is not None and trade.status not in ACTIVE_STATUSES:
                handled += _cancel(trade, order, broker, mode)
            else:
                handled += _note_unknown(owner_id, trade_id, order)
    for trade, order in strays:
        handled += _note_stray(trade, order)
    return handled


def order_is_adopted(trade: PaperTrade, order: Order) -> bool:
    """An order this cycle may just have adopted (placed with an unknown outcome, found by its tag)."""
    purpose = parse_order_tag(order.tag)[1]
    return ((purpose == OrderPurpose.ENTRY and not trade.entry_order_id)
            or (purpose == OrderPurpose.CLOSE and not trade.close_order_id)
            or (purpose == OrderPurpose.PART and trade.part_pending_qty > 0 and not trade.part_order_id)
            or (purpose in (OrderPurpose.STOP_LOSS, OrderPurpose.TAKE_PROFIT) and not trade.bracket_order_id
                and not trade.sl_order_id))


def _at_broker(owner_id: int, mode: str, call: Callable[[], Order]) -> Order:
    """Local-paper orders are rows under row-level security: changed as their owner. A real broker
    is called outside any transaction."""
    if mode == BrokerMode.LOCAL_PAPER:
        with tenancy.acting_as(owner_id):
            return call()
    return call()


def _cancel(trade: PaperTrade, order: Order, broker: BrokerProvider, mode: str) -> int:
    try:
        result = _at_broker(trade.owner_id, mode, lambda: broker.cancel_order(order.id))
    except BrokerError as error:
        logger.error("orphan guard: order %s of %s trade %s is still working and could not be cancelled: %s",
                     order.id, trade.status, trade.pk, error)
        with tenancy.acting_as(trade.owner_id):
            event_record(trade=trade, kind=EventKind.ATTENTION_NEEDED, old_status=trade.status,
                         new_status=trade.status, payload={"orphan_order": order_summary(order), "error": str(error),
                                                           "why": "cancel it at the broker"}, **GUARD)
        return 1
    logger.warning("orphan guard: cancelled order %s, still working for %s trade %s", order.id, trade.status,
                   trade.pk)
    finished_order_seen(owner_id=trade.owner_id, mode=mode, order=result)
    with tenancy.acting_as(trade.owner_id):
        event_record(trade=trade, kind=EventKind.ORDER_CANCELED, old_status=trade.status, new_status=trade.status,
                     payload={"order": order_summary(result), "orphan": True}, **GUARD)
    return 1


def _note_unknown(owner_id: int, trade_id: int, order: Order) -> int:
    """A working order tagged for a trade this account does not hold: a person must look (it is
    not cancelled, since we cannot tell whose it is). Recorded and logged once per order."""
    if not cache.add(f"orphan-noted:{owner_id}:{order.id}", 1, ORPHAN_NOTE_TTL):
        return 0
    logger.error("orphan guard: order %s (tag %s) of user %s matches no trade of theirs", order.id, order.tag,
                 owner_id)
    with tenancy.acting_as(owner_id):
        event_record(trade=None, owner_id=owner_id, kind=EventKind.ATTENTION_NEEDED,
                     payload={"orphan_order": order_summary(order), "tagged_trade": trade_id,
                              "why": "a working order tagged for a trade this account does not hold"}, **GUARD)
    return 1


def _note_stray(trade: PaperTrade, order: Order) -> int:
    """A second working order for an active trade, which the trade does not know."""
    reason = f"A second working order {order.id} ({order.tag}) is at the broker: cancel one of them."[:255]
    if trade.attention_reason == reason:
        return 0
    logger.error("orphan guard: trade %s has an unknown working order %s", trade.pk, order.id)
    try:
        with tenancy.acting_as(trade.owner_id):
            trade_transition(trade_id=trade.pk, to=trade.status, kind=EventKind.ATTENTION_NEEDED,
                             changes={"attention_reason": reason}, payload={"orphan_order": order_summary(order)},
                             **GUARD)
    except (VersionConflict, InvalidTransition):
        return 0
    return 1


def finished_orders_to_read(*, trades: Iterable[PaperTrade], listed: Mapping[str, Order]) -> list[str]:
    """Ids of the orders of finished `trades` (all of one account) that may still be working and
    that the broker's list (`listed`, by id) did not show: at most FINISHED_ORDER_READS, newest
    trades first. Orders the list shows final, or that were seen final before, are left out."""
    candidates = [(trade, order_id) for trade in sorted(trades, key=lambda trade: trade.pk, reverse=True)
                  for order_id in trade_order_ids(trade)]
    for trade, order_id in candidates:
        if (order := listed.get(order_id)) is not None:
            finished_order_seen(owner_id=trade.owner_id, mode=trade.broker_mode, order=order)
    unlisted = [(trade, order_id) for trade, order_id in candidates if order_id not in listed]
    known_final = cache.get_many([_final_key(trade.owner_id, trade.broker_mode, order_id)
                                  for trade, order_id in unlisted])
    wanted = list(dict.fromkeys(order_id for trade, order_id in unlisted
                                if _final_key(trade.owner_id, trade.broker_mode, order_id) not in known_final))
    return wanted[:FINISHED_ORDER_READS]


def finished_order_seen(*, owner_id: int, mode: str, order: Order) -> None:
    """Remember an order of a finished trade that is final: it never changes again."""
    if order.status.is_final:
        cache.set(_final_key(owner_id, mode, order.id), 1, _FINAL_TTL)


def _final_key(owner_id: int, mode: str, order_id: str) -> str:
    return f"final-order:{mode}:{owner_id}:{order_id}"
