"""Reconciling one trader's books with their broker's: what differs, and the safe fixes (ops).

The order sync (`monitoring.sync`) keeps trades in line with the broker every cycle, but it only
acts; it never tells anyone what it found, and it cannot see what it does not look for (a
position the broker holds that no trade accounts for, quantities that disagree). `reconcile`
reads each broker account of the trader once (its orders with the sync's own `read_book`, and
its positions) and lists every difference:

- BROKER_AHEAD: the broker filled, cancelled or closed something a trade has not caught up with;
- NO_POSITION: a trade holds contracts here, the broker holds none of them;
- QUANTITY_MISMATCH: both hold the contract, in different quantities;
- UNKNOWN_POSITION: the broker holds contracts no active trade here holds;
- BRACKET_MISSING: a held trade has no working SL/TP at the broker;
- ORPHAN_ORDER / STRAY_ORDER: a working order tagged for a trade that is not active here, or a
  second working order for an active trade; FOREIGN_ORDER: a working order we did not tag;
- UNREADABLE: the account could not be read at all (broker down, token refused, live off).

With `fix`, the fixes the sync already knows are applied, through the sync's own functions
(broker truth becomes the trade's state; orphans of finished trades are cancelled; a bracket
that ended is marked for attention; a bracket found by its tag is adopted), then the account is
read again and what remains is reported. Quantities and unknown positions are never "fixed": a
person decides. Everything runs as the trader (`tenancy.acting_as`); local-paper orders are
their rows, and a real broker is called outside any transaction, as in the sync.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser

from brokers.base import BrokerError, OrderPurpose, Position, parse_order_tag
from brokers.market import Market, default_market
from tradeoptions import tenancy
from trades.models import ACTIVE_STATUSES, AccountSettings, PaperTrade, TradeStatus
from trades.services import InvalidTransition, TradeError, VersionConflict, broker_of, trade_order_tag

from . import sync

# The sync's own reading and deciding, reused on purpose: reconcile must judge exactly as the sync acts.
from .sync import OrderBook, SyncAccount, exit_legs, filled_exit, known_order_ids, read_book, sync_trade

logger = logging.getLogger(__name__)


class DifferenceKind(StrEnum):
    BROKER_AHEAD = "broker_ahead"
    NO_POSITION = "no_position"
    QUANTITY_MISMATCH = "quantity_mismatch"
    UNKNOWN_POSITION = "unknown_position"
    BRACKET_MISSING = "bracket_missing"
    ORPHAN_ORDER = "orphan_order"
    STRAY_ORDER = "stray_order"
    FOREIGN_ORDER = "foreign_order"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Difference:
    kind: DifferenceKind
    mode: str
    detail: str
    trade_id: int | None = None
    order_id: str | None = None
    fix: str = ""  # what --fix does about it; empty: a person must decide

    def __str__(self) -> str:
        where = f"trade {self.trade_id}" if self.trade_id else (f"order {self.order_id}" if self.order_id else "")
        return f"[{self.mode}] {self.kind.value}{f' ({where})' if where else ''}: {self.detail}"


@dataclass
class ReconcileReport:
    user_id: int
    modes: list[str] = field(default_factory=list)
    found: list[Difference] = field(default_factory=list)
    fixed: int = 0
    remaining: list[Difference] | None = None  # after --fix, what a second read still finds

    @property
    def unreadable(self) -> list[Difference]:
        return [d for d in (self.remaining if self.remaining is not None else self.found)
                if d.kind == DifferenceKind.UNREADABLE]


def reconcile_owner_ids() -> list[int]:
    """Traders worth reconciling: those with active trades or working local-paper orders, and
    those who trade at Tradier now (a stray order or a position there matters even when no trade
    is active). Read across tenants (it is the ops job's list of whom to look at), nothing else is."""
    from brokers.models import BrokerMode, PaperOrder
    from brokers.paper import WORKING

    with tenancy.system_context():
        owners = set(PaperTrade.objects.filter(status__in=ACTIVE_STATUSES).values_list("owner_id", flat=True))
        owners |= set(PaperOrder.objects.filter(status__in=WORKING).values_list("owner_id", flat=True))
        owners |= set(AccountSettings.objects.exclude(broker_mode=BrokerMode.LOCAL_PAPER)
                      .values_list("owner_id", flat=True))
    return sorted(owners)


def reconcile(*, user: AbstractBaseUser, fix: bool = False, market: Market | None = None,
              at: datetime | None = None) -> ReconcileReport:
    """Compare `user`'s active trades and working orders with their broker(s); with `fix`, apply
    the sync's safe fixes and report what remains."""
    market = market or default_market()
    at = at or market.now()
    report = ReconcileReport(user_id=user.pk)
    account, accounts = _accounts(user)
    report.modes = [item.mode for item in accounts]
    for item in accounts:
        found, state = _look(account, item, market, at)
        report.found += found
        if not fix or state is None or not any(difference.fix for difference in found):
            continue
        report.fixed += _fix(item, state, market, at)
    if fix:
        report.remaining = []
        _, accounts = _accounts(user)
        for item in accounts:
            report.remaining += _look(account, item, market, at)[0]
    return report


def _accounts(user) -> tuple[AccountSettings, list[SyncAccount]]:
    """The user's settings and one account per broker mode that holds active trades (a trade is
    managed where it was placed), plus the mode the user trades in now."""
    with tenancy.acting_as(user.pk):
        account = AccountSettings.objects.filter(owner=user).first() or AccountSettings(owner_id=user.pk)
        trades = list(PaperTrade.objects.filter(owner=user, status__in=ACTIVE_STATUSES).order_by("id"))
    modes = sorted({trade.broker_mode for trade in trades} | {account.broker_mode})
    return account, [SyncAccount(user.pk, mode, [t for t in trades if t.broker_mode == mode]) for mode in modes]


@dataclass
class _State:
    broker: object
    book: OrderBook
    positions: list[Position]


def _look(account: AccountSettings, item: SyncAccount, market: Market, at: datetime):
    try:
        broker = broker_of(account, mode=item.mode, market=market)
        book = read_book(item, broker, sync.SyncReport())
        positions = sync.at_broker(item, broker.get_positions)
    except (BrokerError, TradeError) as error:
        return [Difference(DifferenceKind.UNREADABLE, item.mode, f"the account could not be read: {error}")], None
    found = [*_trade_differences(item, book, market, at), *_position_differences(item, book, positions),
             *_order_differences(item, book)]
    return found, _State(broker, book, positions)


def _trade_differences(item: SyncAccount, book: OrderBook, market: Market, at: datetime) -> list[Difference]:
    found = []
    for trade in item.trades:
        say = _say(item.mode, trade)
        if trade.status == TradeStatus.PENDING:
            entry = book.find(trade.entry_order_id) or book.by_tag.get(_tag(trade, OrderPurpose.ENTRY))
            if entry is None:
                entry_id = trade.entry_order_id or "(untracked)"
                found.append(say(DifferenceKind.NO_POSITION, f"the entry order {entry_id} is not at the broker"))
                continue
            leg = next((leg for leg in entry.legs if leg.side is not None and leg.side.is_buy), entry)
            filled = leg.fill.quantity if leg.fill else leg.filled_quantity
            if leg.status.is_final or filled != trade.filled_qty:
                found.append(say(DifferenceKind.BROKER_AHEAD,
                                 f"the entry order {entry.id} is {leg.status.value} with {filled} filled at the "
                                 f"broker; the trade is PENDING with {trade.filled_qty} filled",
                                 order_id=entry.id, fix="apply the entry's outcome"))
            continue
        head, sl, tp = exit_legs(trade, book)
        if exit_fill := filled_exit(sl, tp):
            reason, leg = exit_fill.reason, exit_fill.leg
            found.append(say(DifferenceKind.BROKER_AHEAD,
                             f"the {reason} leg {leg.id} filled at {leg.fill.price} at the broker; the trade is "
                             f"still {trade.status}", order_id=leg.id, fix="close the trade at the broker's fill"))
            continue
        if trade.status == TradeStatus.CLOSING:
            sell = book.find(trade.close_order_id) or book.by_tag.get(_tag(trade, OrderPurpose.CLOSE))
            if sell is not None and sell.status.is_final:
                found.append(say(DifferenceKind.BROKER_AHEAD,
                                 f"the close order {sell.id} is {sell.status.value} at the broker; the trade is "
                                 "still CLOSING", order_id=sell.id, fix="apply the close order's outcome"))
            continue
        found += _bracket_differences(trade, say, book, head, sl, tp, market, at)
    return found


def _bracket_differences(trade, say, book: OrderBook, head, sl, tp, market: Market, at: datetime) -> list[Difference]:
    if not (trade.bracket_order_id or trade.sl_order_id or trade.tp_order_id):
        working = book.by_tag.get(_tag(trade, OrderPurpose.STOP_LOSS))
        if working is not None and working.status.is_working:
            return [say(DifferenceKind.BRACKET_MISSING, f"an SL/TP order {working.id} tagged for the trade is "
                        "working at the broker but not recorded", order_id=working.id, fix="adopt it")]
        return [say(DifferenceKind.BRACKET_MISSING, "the trade has no SL/TP bracket: adjust the bracket to place one")]
    exits = [order for order in (head, sl, tp) if order is not None]
    if not exits:
        return [say(DifferenceKind.BRACKET_MISSING,
                    f"its bracket {trade.bracket_order_id or trade.sl_order_id} is not at the broker")]
    if all(order.status.is_final for order in exits) and at < market.expiry_cutoff(trade.expiry):
        return [say(DifferenceKind.BRACKET_MISSING,
                    f"its bracket is {exits[0].status.value} at the broker: the position is unprotected",
                    order_id=exits[0].id, fix="protect it again (adopt or place its bracket)")]
    return []


def _position_differences(item: SyncAccount, book: OrderBook, positions: list[Position]) -> list[Difference]:
    ours: dict[str, int] = defaultdict(int)
    owners: dict[str, list[int]] = defaultdict(list)
    for trade in item.trades:
        if trade.held_qty:
            ours[trade.option_symbol] += trade.held_qty
            owners[trade.option_symbol].append(trade.pk)
    theirs = {position.symbol: int(position.quantity) for position in positions}
    working = {order.option_symbol for order in _working(book)}
    found = []
    for symbol in sorted(set(ours) | set(theirs)):
        held, at_broker = ours.get(symbol, 0), theirs.get(symbol, 0)
        if held == at_broker:
            continue
        trades = ", ".join(str(pk) for pk in owners.get(symbol, [])) or "none"
        first = owners[symbol][0] if owners.get(symbol) else None
        if at_broker == 0:
            orders = "it has working orders on it" if symbol in working else "nor any order on it"
            found.append(Difference(DifferenceKind.NO_POSITION, item.mode,
                                    f"trade(s) {trades} hold {held} {symbol} here; the broker holds none, {orders}",
                                    trade_id=first))
        elif held == 0:
            found.append(Difference(DifferenceKind.UNKNOWN_POSITION, item.mode,
                                    f"the broker holds {at_broker} {symbol}; no active trade here does"))
        else:
            found.append(Difference(DifferenceKind.QUANTITY_MISMATCH, item.mode,
                                    f"trade(s) {trades} hold {held} {symbol} here; the broker holds {at_broker}",
                                    trade_id=first))
    return found


def _order_differences(item: SyncAccount, book: OrderBook) -> list[Difference]:
    active = {str(trade.pk): trade for trade in item.trades}
    known = {order_id for trade in item.trades for order_id in known_order_ids(trade)}
    suspects, found = [], []
    for order in book.orders:
        if not order.status.is_working or order.id in known:
            continue
        parsed = parse_order_tag(order.tag)
        if parsed is None:
            found.append(Difference(DifferenceKind.FOREIGN_ORDER, item.mode,
                                    f"working {order.order_class} order with tag {order.tag or '(none)'} was not "
                                    "placed by tradeoptions", order_id=order.id))
        elif parsed[0] in active:
            if not sync.is_adopted(active[parsed[0]], order):
                found.append(Difference(DifferenceKind.STRAY_ORDER, item.mode,
                                        f"a second working order {order.id} ({order.tag}) for the trade",
                                        trade_id=active[parsed[0]].pk, order_id=order.id,
                                        fix="mark the trade for attention"))
        else:
            suspects.append((parsed[0], order))
    if suspects:
        ids = [int(trade_id) for trade_id, _ in suspects if trade_id.isdigit()]
        with tenancy.acting_as(item.owner_id):
            status = dict(PaperTrade.objects.filter(pk__in=ids).values_list("pk", "status"))
        for trade_id, order in suspects:
            state = status.get(int(trade_id)) if trade_id.isdigit() else None
            if state is not None and state not in ACTIVE_STATUSES:
                found.append(Difference(DifferenceKind.ORPHAN_ORDER, item.mode,
                                        f"working order {order.id} ({order.tag}) belongs to trade {trade_id}, "
                                        f"which is {state}", trade_id=int(trade_id), order_id=order.id,
                                        fix="cancel it at the broker"))
            else:
                found.append(Difference(DifferenceKind.ORPHAN_ORDER, item.mode,
                                        f"working order {order.id} ({order.tag}) is tagged for a trade this account "
                                        "does not hold", order_id=order.id, fix="record it for attention"))
    return found


def _fix(item: SyncAccount, state: _State, market: Market, at: datetime) -> int:
    """The sync's own writes for this account, from the book just read."""
    fixed = 0
    for trade in item.trades:
        try:
            fixed += sync_trade(trade, state.book, state.broker, market, at)
        except (VersionConflict, InvalidTransition):
            continue  # the trade moved meanwhile: the second read shows where it stands
        except (BrokerError, TradeError) as error:  # e.g. a bracket the broker refused: still listed after
            logger.warning("reconcile: trade %s could not be fixed: %s", trade.pk, error)
    return fixed + sync.guard_orphans(item, state.book, state.broker)


def _working(book: OrderBook):
    for order in book.orders:
        if order.status.is_working:
            yield from (leg for leg in order.legs if leg.status.is_working) if order.legs else (order,)


def _tag(trade: PaperTrade, purpose: OrderPurpose) -> str:
    return trade_order_tag(trade, purpose)


def _say(mode: str, trade: PaperTrade):
    def difference(kind: DifferenceKind, detail: str, *, order_id: str | None = None, fix: str = "") -> Difference:
        return Difference(kind, mode, detail, trade_id=trade.pk, order_id=order_id, fix=fix)

    return difference

