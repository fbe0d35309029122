"""The built-in local paper broker: no account needed, orders are rows in PostgreSQL.

Fills are deliberately no kinder than a real market: market orders buy at the ask and sell at
the bid (never the mid), a stop-loss triggers when the bid trades at or through the stop and
fills at that bid (so a gap fills worse than the stop), a resting take-profit fills at its limit
once the bid reaches it. Every fill keeps the quote it filled against, so fill quality can be
measured later.

The broker knows nothing of trades or of the market-data layer: quotes, the market clock and the
underlying's close come in through `brokers.market.Market`, which the monitoring app supplies at
start-up. Matching runs when an order arrives and whenever the monitor cycle calls `match()`.

A contract still held past its expiry cutoff is settled on the books as a broker would: a
sell-to-close at its intrinsic value against the underlying's close (in the money: that cash is
credited; out of the money: at 0, the position simply goes), recorded as a filled order with no
quote and no commission, so cash, positions and realized P&L keep following the fills alone. A
contract held short (a spread's sold leg) is bought back the same way, at its intrinsic value: an
assigned short pays it.

Spreads (multileg orders) are a parent row and one row per leg, like OCO groups; all legs fill in
one transaction or none does, each at its natural side improved toward the mid as `FillRules`
says (`brokers.paper_spreads`). The broker holds options only: a combo order (a stock leg) is
refused. Short legs are held against: every short contract must pair with a long one of the same
right expiring no earlier (no naked writing, unless `PAPER_ALLOW_NAKED_SHORTS` is on), and the
buying power keeps back the held legs' worst payout at expiry (docs/paper-spreads.md).
"""

from __future__ import annotations

import copy
import json
import logging
from collections import namedtuple
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_CEILING, Decimal
from operator import itemgetter
from typing import ClassVar

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Q, QuerySet, Sum, When

from . import settlement
from .base import (
    SPREAD_CLASSES,
    AccountBalance,
    BrokerError,
    Fill,
    OptionChainEntry,
    Order,
    OrderDuration,
    OrderPurpose,
    OrderRejected,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    Quote,
    SpreadOrderRequest,
    SpreadPriceType,
    StopModifyRefused,
    order_tag,
    parse_order_tag,
    spread_units,
)
from .market import Market, default_market
from .models import PaperAccount, PaperFill, PaperOrder
from .occ import intrinsic_value, parse_symbol, underlying_of_root
from .paper_spreads import crosses, net_price, price_legs, uncovered_underlyings, worst_case_at_expiry

logger = logging.getLogger(__name__)
SHARES_PER_CONTRACT = 100
WORKING = [OrderStatus.OPEN.value, OrderStatus.PENDING.value, OrderStatus.PARTIALLY_FILLED.value]


@dataclass(frozen=True)
class FillRules:
    commission_per_contract: Decimal
    slippage_per_share: Decimal
    # Spread legs: percent of the half-spread given back toward the mid (0 natural, 100 the mid).
    spread_improvement_pct: Decimal = Decimal(0)
    # Off: a short leg must pair with a long of its right expiring no earlier (no naked writing).
    allow_naked_shorts: bool = False

    def __post_init__(self) -> None:
        if not Decimal(0) <= self.spread_improvement_pct <= Decimal(100):
            raise ValueError(f"Spread price improvement must be 0 to 100 %, got {self.spread_improvement_pct}.")

    @classmethod
    def from_settings(cls) -> FillRules:
        return cls(
            commission_per_contract=Decimal(str(settings.PAPER_COMMISSION_PER_CONTRACT)),
            slippage_per_share=Decimal(str(settings.PAPER_SLIPPAGE_PER_SHARE)),
            spread_improvement_pct=Decimal(str(settings.PAPER_SPREAD_IMPROVEMENT_PCT)),
            allow_naked_shorts=bool(settings.PAPER_ALLOW_NAKED_SHORTS),
        )


def fill_price(order: PaperOrder, quote: Quote, rules: FillRules, *, on_arrival: bool) -> Decimal | None:
    """The price `order` executes at against `quote` now, or None if it does not execute.

    Updates `order.triggered` when a stop-limit's stop is touched. `on_arrival` marks the first
    look at a new order: a marketable limit order then takes the better quote, while one that
    rested on the book fills at its limit.
    """
    sell = not OrderSide(order.side).is_buy
    touch = quote.bid if sell else quote.ask  # the price we can trade against
    if touch is None or touch <= 0:
        return None
    kind = OrderType(order.order_type)
    if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and not order.triggered:
        if (sell and touch <= order.stop_price) or (not sell and touch >= order.stop_price):
            order.triggered = True
        else:
            return None
    if kind in (OrderType.MARKET, OrderType.STOP):
        slipped = touch - rules.slippage_per_share if sell else touch + rules.slippage_per_share
        return max(slipped, Decimal("0.01"))
    marketable = touch >= order.limit_price if sell else touch <= order.limit_price
    if not marketable:
        return None
    if on_arrival or kind == OrderType.STOP_LIMIT:
        return touch
    return order.limit_price


class LocalPaperBroker:
    """One user's account at the local paper broker. `owner_id` is the user's id, so row-level
    security isolates paper orders like every other user-owned row."""

    supports_otoco: ClassVar[bool] = True

    def __init__(self, owner_id: int, *, starting_cash: Decimal, market: Market | None = None,
                 rules: FillRules | None = None) -> None:
        self.owner_id = owner_id
        self.starting_cash = starting_cash
        self.market = market or default_market()
        self.rules = rules or FillRules.from_settings()

    # --- market data ---------------------------------------------------------------------

    def get_quotes(self, symbols: Iterable[str]) -> dict[str, Quote]:
        return self.market.quotes(list(symbols))

    def get_option_chain(self, symbol: str, expiry: date) -> list[OptionChainEntry]:
        return self.market.option_chain(symbol, expiry)

    # --- placing -------------------------------------------------------------------------

    def place_order(self, request: OrderRequest) -> Order:
        return self._place("option", [request], active=[True])

    def place_oco_order(self, sl_leg: OrderRequest, tp_leg: OrderRequest) -> Order:
        _check_exit_pair(sl_leg, tp_leg)
        return self._place("oco", [sl_leg, tp_leg], active=[True, True])

    def place_otoco_order(self, entry: OrderRequest, sl_leg: OrderRequest, tp_leg: OrderRequest) -> Order:
        _check_exit_pair(sl_leg, tp_leg)
        if entry.option_symbol != sl_leg.option_symbol:
            raise OrderRejected("OTOCO exits must be on the entry's contract.", tag=entry.tag)
        return self._place("otoco", [entry, sl_leg, tp_leg], active=[True, False, False])

    def place_spread_order(self, request: SpreadOrderRequest) -> Order:
        """A multileg spread: recorded as a parent and one row per leg, matched on arrival and by
        every matching cycle; every leg fills in one transaction or none does. The parent's fill
        price is the net per share of one spread unit (debit positive, credit negative).
        A combo (a stock leg) is refused: this broker holds no stock."""
        if request.order_class != "multileg":
            raise OrderRejected("The local paper broker trades options only: a combo order's stock leg "
                                "cannot be filled here.", tag=request.tag)
        return self._record(lambda now: self._spread_refusal(request, now),
                            lambda now, reserve: self._create_spread_rows(request, now, reserve=reserve))

    def _place(self, order_class: str, requests: list[OrderRequest], *, active: list[bool]) -> Order:
        return self._record(lambda now: self._refusal(requests[0], now),
                            lambda now, reserve: self._create_rows(order_class, requests, active, now,
                                                                   reserve=reserve))

    def _record(self, refuse, create) -> Order:
        """Check and record the order under the account's lock (so two placements cannot both
        spend the same cash or sell the same contracts), then match it on arrival."""
        now = self.market.now()
        with transaction.atomic():
            lock_account(self.owner_id)
            PaperAccount.objects.update_or_create(owner_id=self.owner_id,
                                                  defaults={"starting_cash": self.starting_cash})
            refusal, reserve = refuse(now)
            rows = create(now, reserve)
            head = rows[0].parent or rows[0]
            if refusal:
                for row in {head, *rows}:
                    _set(row, status=OrderStatus.REJECTED.value, reason=refusal, updated_at=now)
        if refusal:
            raise OrderRejected(refusal, order_id=str(head.pk), tag=head.tag)
        self._match_group(head.pk, on_arrival=True)
        return self.get_order(str(head.pk))

    def _create_rows(self, order_class, requests, active, now, *, reserve) -> list[PaperOrder]:
        parent = None
        if order_class != "option":
            parent = PaperOrder.objects.create(
                owner_id=self.owner_id, order_class=order_class, tag=requests[0].tag,
                option_symbol=requests[0].option_symbol, underlying=requests[0].underlying,
                duration=requests[0].duration.value, created_at=now, updated_at=now,
            )
        rows = []
        for index, (request, is_active) in enumerate(zip(requests, active, strict=True)):
            rows.append(PaperOrder.objects.create(
                owner_id=self.owner_id, parent=parent, order_class="option", leg_index=index, tag=request.tag,
                option_symbol=request.option_symbol, underlying=request.underlying, side=request.side.value,
                order_type=request.order_type.value, duration=request.duration.value, quantity=request.quantity,
                limit_price=request.limit_price, stop_price=request.stop_price, active=is_active,
                reserve_price=reserve if request.side.is_buy else None,
                expires_at=self._expiry(request, now), created_at=now, updated_at=now,
            ))
        return rows

    def _create_spread_rows(self, request: SpreadOrderRequest, now: datetime, *,
                            reserve: Decimal | None) -> list[PaperOrder]:
        """The parent carries the net price, the units and the buying power reserved per share;
        each leg its contract, side and quantity. All share one expiry, so they end together."""
        expires = self._spread_expiry(request, now)
        head = PaperOrder.objects.create(
            owner_id=self.owner_id, order_class=request.order_class, price_type=request.price_type.value,
            tag=request.tag, underlying=request.underlying, duration=request.duration.value,
            quantity=spread_units(leg.quantity for leg in request.legs), limit_price=request.price,
            reserve_price=reserve, expires_at=expires, created_at=now, updated_at=now,
        )
        return PaperOrder.objects.bulk_create([
            PaperOrder(owner_id=self.owner_id, parent=head, order_class="option", leg_index=index, tag=request.tag,
                       option_symbol=leg.symbol, underlying=request.underlying, side=leg.side.value,
                       duration=request.duration.value, quantity=leg.quantity, expires_at=expires,
                       created_at=now, updated_at=now)
            for index, leg in enumerate(request.legs)
        ])

    def _spread_expiry(self, request: SpreadOrderRequest, now: datetime) -> datetime:
        """The nearest leg's expiry cutoff (a calendar's front month), or the close for a day order."""
        cutoff = min(self.market.expiry_cutoff(parse_symbol(leg.symbol).expiry) for leg in request.legs)
        if request.duration == OrderDuration.DAY:
            return min(self.market.session_close(now), cutoff)
        return cutoff

    def _spread_refusal(self, request: SpreadOrderRequest, now: datetime) -> tuple[str | None, Decimal | None]:
        """As `_refusal`, for a spread: every leg tradable, closing legs held, no short left
        uncovered, and the buying power for the net it expects (a debit's price, a credit's price
        received, a market order's natural net now), every leg's commission, and the change in
        what the account's short legs hold back. That sum, per share of one unit (never below 0),
        is what the working order reserves."""
        ledger = self.ledger
        legs = [(leg.symbol, OrderSide(leg.side), leg.quantity) for leg in request.legs]
        for symbol, side, quantity in legs:
            if now >= self.market.expiry_cutoff(parse_symbol(symbol).expiry):
                return f"{symbol} has expired and can no longer be traded.", None
            if refusal := _leg_refusal(symbol, side, quantity, ledger.held(symbol)):
                return refusal, None
        before = ledger.positions()
        after = _after(before, legs)
        if refusal := _uncovered_refusal(after, legs, self.rules):
            return refusal, None
        units = spread_units(quantity for _, _, quantity in legs)
        net = {SpreadPriceType.DEBIT: request.price, SpreadPriceType.CREDIT: -(request.price or 0)}.get(
            request.price_type, Decimal(0))
        if request.price_type == SpreadPriceType.MARKET:
            priced = price_legs(legs, self.market.quotes([symbol for symbol, _, _ in legs]), Decimal(0))
            if priced is None:
                return f"No quote for every leg of the {request.underlying} spread: a market order cannot be " \
                       "priced.", None
            net = net_price(priced, units)
        held_back = worst_case_at_expiry(after) - worst_case_at_expiry(before)
        cost = spread_cost(net, units, sum(quantity for _, _, quantity in legs), self.rules) + held_back
        reserve = max(net + held_back / (units * SHARES_PER_CONTRACT), Decimal(0)).quantize(
            RESERVE_STEP, rounding=ROUND_CEILING)
        available = ledger.buying_power()
        if cost > available:
            return f"Insufficient buying power: the order needs ${cost:.2f}, ${available:.2f} is available.", reserve
        return None, reserve

    def _expiry(self, request: OrderRequest, now: datetime) -> datetime:
        cutoff = self.market.expiry_cutoff(parse_symbol(request.option_symbol).expiry)
        if request.duration == OrderDuration.DAY:
            return min(self.market.session_close(now), cutoff)
        return cutoff

    def _refusal(self, request: OrderRequest, now: datetime) -> tuple[str | None, Decimal | None]:
        """Why the broker refuses this order outright, as the broker would word it, and for a buy
        the price its buying power is reserved at."""
        if now >= self.market.expiry_cutoff(parse_symbol(request.option_symbol).expiry):
            return f"{request.option_symbol} has expired and can no longer be traded.", None
        if request.side == OrderSide.SELL_TO_OPEN:
            return "The local paper broker sells options to open only as a leg of a spread.", None
        if refusal := _single_leg_refusal(self.ledger, request.option_symbol, request.side, request.quantity,
                                          self.rules):
            return refusal, None
        if request.side == OrderSide.SELL_TO_CLOSE:
            # Working exits may already cover these contracts: a manual close sells before it
            # cancels the bracket, so that the position is never without an exit. Whichever sale
            # fills first takes the contracts; the fill-time check cancels the other.
            return None, None
        price = request.limit_price or request.stop_price
        if price is None:
            quote = self.market.quotes([request.option_symbol]).get(request.option_symbol)
            price = quote.ask if quote else None
        if price is None or price <= 0:
            return f"No quote for {request.option_symbol}: a market order cannot be priced.", None
        cost = order_cost(price, request.quantity, self.rules)
        available = self.ledger.buying_power()
        if cost > available:
            return f"Insufficient buying power: the order needs ${cost:.2f}, ${available:.2f} is available.", price
        return None, price

    # --- cancelling and reading ----------------------------------------------------------

    def cancel_order(self, order_id: str) -> Order:
        """Cancels the order's whole group (an OCO leg never survives alone). A final order is
        returned as it is: a cancel that arrives after the fill is not an error."""
        now = self.market.now()
        row = self._row(order_id)
        with transaction.atomic():
            head = _lock_group(row.parent_id or row.pk)
            for member in [head, *head.legs_locked]:
                if member.status in WORKING:
                    _set(member, status=OrderStatus.CANCELED.value, updated_at=now)
        return self.get_order(order_id)

    def modify_stop(self, order_id: str, stop_price: Decimal) -> Order:
        """Moves a resting stop natively (the order keeps its id): the stop order itself, or the
        stop leg of an OCO/OTOCO given by its own id or its parent's. It is matched at once, so a
        stop moved through the bid triggers as any stop would. A final order raises
        `StopModifyRefused(finalized=True)`: whatever ended it stands."""
        if not isinstance(stop_price, Decimal) or not stop_price.is_finite() or stop_price <= 0:
            raise ValueError(f"A stop price must be a positive Decimal, got {stop_price!r}.")
        now = self.market.now()
        row = self._row(order_id)
        with transaction.atomic():
            head = _lock_group(row.parent_id or row.pk)
            members = head.legs_locked or [head]
            stops = {OrderType.STOP.value, OrderType.STOP_LIMIT.value}
            target = next((m for m in members if m.pk == row.pk and m.order_type in stops), None)
            # Given the group's own id: its stop leg (the last one, so an OTOCO's stop entry is not taken).
            target = target or next((m for m in reversed(members) if row.pk == head.pk and m.order_type in stops),
                                    None)
            if target is None:
                raise StopModifyRefused("it is not a stop order", order_id=order_id)
            if target.status not in WORKING or head.status not in WORKING:
                raise StopModifyRefused(f"the order is already {target.status}", order_id=order_id, finalized=True)
            _set(target, stop_price=stop_price, triggered=False, updated_at=now)
        self._match_group(head.pk, on_arrival=False)
        return self.get_order(str(target.pk))

    def get_order(self, order_id: str) -> Order:
        row = self._row(order_id)
        return _as_order(row, list(row.legs.all()))

    def _row(self, order_id: str) -> PaperOrder:
        try:
            return self._owned().get(pk=int(order_id))
        except (PaperOrder.DoesNotExist, ValueError):
            raise BrokerError(f"Order {order_id} was not found at the local paper broker.") from None

    def get_orders(self) -> list[Order]:
        heads = self._owned().filter(parent__isnull=True).prefetch_related("legs")
        return [_as_order(head, list(head.legs.all())) for head in heads]

    def find_order_by_tag(self, tag: str) -> Order | None:
        head = (self._owned().filter(parent__isnull=True, tag=tag)
                .exclude(status__in=[OrderStatus.REJECTED.value, OrderStatus.CANCELED.value])
                .order_by("-id").first())
        return _as_order(head, list(head.legs.all())) if head else None

    def get_positions(self) -> list[Position]:
        positions = []
        for symbol, (quantity, cost, acquired) in self._book().items():
            if quantity:
                positions.append(Position(symbol=symbol, quantity=Decimal(quantity), cost_basis=cost,
                                          acquired_at=acquired))
        return positions

    def get_account_balance(self) -> AccountBalance:
        book = self._book()
        held = {symbol: entry for symbol, entry in book.items() if entry[0]}
        quotes = self.market.quotes(list(held)) if held else {}
        market_value = sum((quantity * SHARES_PER_CONTRACT * (quotes[s].mid or quotes[s].bid or Decimal(0))
                            for s, (quantity, _, _) in held.items() if s in quotes), Decimal(0))
        cost = sum((entry[1] for entry in held.values()), Decimal(0))
        cash = self._cash()
        return AccountBalance(
            account_number=f"LOCAL-{self.owner_id}", account_type="paper", total_equity=cash + market_value,
            total_cash=cash, option_buying_power=self._buying_power(), market_value=market_value,
            open_pl=market_value - cost, close_pl=self._realized(),
            pending_orders_count=self._owned().filter(status__in=WORKING, parent__isnull=True).count(),
        )

    # --- matching ------------------------------------------------------------------------

    def match(self) -> int:
        """Expire and fill this account's working orders against current quotes, and settle its
        contracts that have expired. Returns fills made (settlements included)."""
        fills = match_orders(self._owned(), market=self.market, rules=self.rules)
        return fills + settle_expired_positions(market=self.market, rules=self.rules, owner_id=self.owner_id)

    def _match_group(self, head_id: int, *, on_arrival: bool) -> int:
        return match_orders(self._owned().filter(Q(pk=head_id) | Q(parent_id=head_id)), market=self.market,
                            rules=self.rules, on_arrival=on_arrival)

    # --- account arithmetic --------------------------------------------------------------

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.owner_id, self.starting_cash, self.rules)

    def _owned(self):
        return PaperOrder.objects.filter(owner_id=self.owner_id)

    def _fills(self):
        return PaperFill.objects.filter(owner_id=self.owner_id).order_by("id")

    def _cash(self) -> Decimal:
        return self.ledger.cash()

    def _buying_power(self) -> Decimal:
        return self.ledger.buying_power()

    def _book(self) -> dict[str, tuple[int, Decimal, datetime | None]]:
        """Per contract: contracts held (negative: short), their average cost basis in dollars
        (negative for a short: the premium it brought), first acquired."""
        return _book_of(self._fills())[0]

    def _realized(self) -> Decimal:
        return _book_of(self._fills())[1]


def _book_of(fills) -> tuple[dict[str, tuple[int, Decimal, datetime | None]], Decimal]:
    """Average-cost books of a run of fills: per contract (held, cost basis, first acquired),
    and the realized P&L, commissions included. A fill against the position closes part of it
    at its average cost; any rest (had it crossed zero) opens the other way."""
    book: dict[str, tuple[int, Decimal, datetime | None]] = {}
    realized = Decimal(0)
    for fill in fills:
        held, cost, acquired = book.get(fill.option_symbol, (0, Decimal(0), None))
        direction = 1 if OrderSide(fill.side).is_buy else -1
        closing = min(fill.quantity, abs(held)) if held * direction < 0 else 0
        if closing:
            basis = cost * closing / abs(held)
            realized += -direction * fill.price * closing * SHARES_PER_CONTRACT - basis
            held, cost = held + direction * closing, cost - basis
            acquired = acquired if held else None
        if opening := fill.quantity - closing:
            held += direction * opening
            cost += direction * fill.price * opening * SHARES_PER_CONTRACT
            acquired = acquired or fill.filled_at
        realized -= fill.commission
        book[fill.option_symbol] = (held, cost, acquired if held else None)
    return book, realized


def _leg_refusal(symbol: str, side: OrderSide, quantity: int, held: int) -> str | None:
    """Closing takes only what is held, on its side; opening never trades against a position
    held the other way (it would close it, which is what the closing sides are for)."""
    if side == OrderSide.SELL_TO_CLOSE and held < quantity:
        return f"Cannot sell {quantity} {symbol} to close: {max(held, 0)} held."
    if side == OrderSide.BUY_TO_CLOSE and -held < quantity:
        return f"Cannot buy {quantity} {symbol} to close: {max(-held, 0)} held short."
    if side == OrderSide.SELL_TO_OPEN and held > 0:
        return f"Cannot sell {symbol} to open: {held} held long; sell them to close instead."
    if side == OrderSide.BUY_TO_OPEN and held < 0:
        return f"Cannot buy {symbol} to open: {-held} held short; buy them to close instead."
    return None


def _single_leg_refusal(ledger: Ledger, symbol: str, side: OrderSide, quantity: int, rules: FillRules) -> str | None:
    """A single-leg order, on any side, against the account's positions: `_leg_refusal` (a buy to
    open never nets against a spread's short), and a sale that would leave a short uncovered."""
    if refusal := _leg_refusal(symbol, side, quantity, ledger.held(symbol)):
        return refusal
    if side.is_buy:
        return None
    return _uncovered_refusal(_after(ledger.positions(), [(symbol, side, quantity)]), [(symbol, side, quantity)],
                              rules)


def _after(positions: dict[str, int], legs: Iterable[tuple[str, OrderSide, int]]) -> dict[str, int]:
    """The positions once `legs` (symbol, side, contracts) have filled."""
    after = dict(positions)
    for symbol, side, quantity in legs:
        after[symbol] = after.get(symbol, 0) + (quantity if side.is_buy else -quantity)
    return {symbol: held for symbol, held in after.items() if held}


def _uncovered_refusal(after: dict[str, int], legs: Iterable[tuple[str, OrderSide, int]],
                       rules: FillRules) -> str | None:
    """An order that sells leaves no short contract without a long of its right expiring no
    earlier on that underlying, unless the rules allow naked shorts. An order that only buys
    never adds risk, so it is never refused here (it may be what closes a naked short)."""
    if rules.allow_naked_shorts:
        return None
    sold = {underlying_of_root(parse_symbol(symbol).root) for symbol, side, _ in legs if not side.is_buy}
    naked = [underlying for underlying in uncovered_underlyings(after) if underlying in sold]
    if naked:
        return (f"It would leave a short {naked[0]} option uncovered (no long option of the same type expiring "
                "no earlier); the local paper broker does not write naked options.")
    return None


BUY_SIDES = [OrderSide.BUY_TO_OPEN.value, OrderSide.BUY_TO_CLOSE.value]
RESERVE_STEP = Decimal("0.0001")  # a spread's reserve per share, as stored (rounded up)
ACCOUNT_LOCK = 0x70617072  # "papr": the advisory-lock namespace of paper accounts


def lock_account(owner_id: int) -> None:
    """Serialise everything that spends an account's cash or contracts, until the transaction ends.
    The brokers app cannot lock the user's settings row, so an advisory lock keyed by owner id."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ACCOUNT_LOCK, owner_id])


def order_cost(price: Decimal, quantity: int, rules: FillRules) -> Decimal:
    return price * quantity * SHARES_PER_CONTRACT + rules.commission_per_contract * quantity


def spread_cost(net: Decimal, units: int, contracts: int, rules: FillRules) -> Decimal:
    """What a spread costs the account: its net (per share of one unit) on every unit, and the
    commission on every contract of every leg. Negative when a credit exceeds the commissions."""
    return net * units * SHARES_PER_CONTRACT + rules.commission_per_contract * contracts


@dataclass(frozen=True)
class Ledger:
    """An account's money and contracts, summed in the database."""

    owner_id: int
    starting_cash: Decimal
    rules: FillRules

    @classmethod
    def of(cls, owner_id: int, rules: FillRules) -> Ledger:
        account = PaperAccount.objects.filter(owner_id=owner_id).first()
        return cls(owner_id, account.starting_cash if account else Decimal(0), rules)

    def cash(self) -> Decimal:
        totals = PaperFill.objects.filter(owner_id=self.owner_id).aggregate(
            bought=Sum(F("price") * F("quantity"), filter=Q(side__in=BUY_SIDES)),
            sold=Sum(F("price") * F("quantity"), filter=~Q(side__in=BUY_SIDES)),
            commission=Sum("commission"),
        )
        bought, sold, commission = (totals[name] or Decimal(0) for name in ("bought", "sold", "commission"))
        return self.starting_cash + (sold - bought) * SHARES_PER_CONTRACT - commission

    def buying_power(self) -> Decimal:
        """Cash less what working buys may spend (at their reserve price, commission included),
        less what the held short legs could pay out at expiry (`worst_case_at_expiry`: a credit
        spread's width; their premium is in the cash already); a working spread reserves on its
        parent its expected net, every leg's commission and the change in that payout."""
        reserved = Decimal(0)
        working = PaperOrder.objects.filter(owner_id=self.owner_id, status__in=WORKING)
        buys = working.filter(side__in=BUY_SIDES).exclude(parent__order_class__in=SPREAD_CLASSES)
        for price, quantity, filled in buys.values_list("reserve_price", "quantity", "filled_quantity"):
            reserved += order_cost(price or Decimal(0), quantity - filled, self.rules)
        spreads = working.filter(order_class__in=SPREAD_CLASSES).annotate(contracts=Sum("legs__quantity"))
        for price, units, contracts in spreads.values_list("reserve_price", "quantity", "contracts"):
            reserved += spread_cost(price or Decimal(0), units, contracts or 0, self.rules)
        return self.cash() - reserved - worst_case_at_expiry(self.positions())

    def positions(self) -> dict[str, int]:
        """Every contract held, signed (short negative), from the fills of open positions only."""
        rows = (PaperFill.objects.filter(owner_id=self.owner_id, position_closed=False).order_by()
                .values("option_symbol")
                .annotate(net=Sum(Case(When(side__in=BUY_SIDES, then=F("quantity")), default=-F("quantity"))))
                .exclude(net=0))
        return {row["option_symbol"]: row["net"] for row in rows}

    def held(self, symbol: str) -> int:
        """Contracts held: negative when short."""
        totals = PaperFill.objects.filter(owner_id=self.owner_id, option_symbol=symbol).aggregate(
            bought=Sum("quantity", filter=Q(side__in=BUY_SIDES)), sold=Sum("quantity", filter=~Q(side__in=BUY_SIDES))
        )
        return (totals["bought"] or 0) - (totals["sold"] or 0)


def trade_commissions(owner_id: int, trade_id: int) -> dict[OrderPurpose, Decimal]:
    """What the ledger charged the fills of one trade's orders (tagged `to-<trade id>-<purpose>`),
    per purpose, at whatever rate each fill was charged: the commissions the trade really cost.
    A purpose with no fill is absent (its orders cost nothing)."""
    tags = [order_tag(trade_id, purpose) for purpose in OrderPurpose]
    part_sales = order_tag(trade_id, OrderPurpose.PART)  # `to-<id>-part<n>`: one tag per part sale
    ours = Q(order__tag__in=tags) | Q(order__tag__startswith=part_sales)
    charged = (PaperFill.objects.filter(ours, owner_id=owner_id).order_by()
               .values_list("order__tag").annotate(total=Sum("commission")))
    totals: dict[OrderPurpose, Decimal] = {}
    for tag, total in charged:
        parsed = parse_order_tag(tag)
        if parsed is not None and parsed[0] == str(trade_id):
            totals[parsed[1]] = totals.get(parsed[1], Decimal(0)) + total
    return totals


def owners_with_working_orders() -> list[int]:
    """The accounts that have orders still working, in whatever accounts the context can see."""
    working = PaperOrder.objects.filter(status__in=WORKING).order_by("owner_id")  # not by id: one row an owner
    return list(working.values_list("owner_id", flat=True).distinct())


def orders_of(owner_ids: Iterable[int], *, ids: Iterable[int] = (), tags: Iterable[str] = ()) -> dict[int, list[Order]]:
    """Many accounts' orders in one read, exactly as each account's `get_orders` shows them, but
    only those still working and those named by id or by tag: what the monitor's cross-tenant
    order sync needs, without one `get_orders` (every order ever placed) per account.

    The monitor reads tens of thousands of rows a cycle, so this read builds no model instances:
    the ids and tags go as two comma-separated texts (not one placeholder each, nor arrays, which
    the driver quotes element by element), and the rows come back as one JSON document, parsed in
    C, rather than value by value through the database driver's loaders (`_OrderRow`). The
    `Order`s are then built by the very function `get_orders` uses."""
    owners = list(owner_ids)
    orders: dict[int, list[Order]] = {owner: [] for owner in owners}
    if not owners:
        return orders
    tags = list(tags)
    named = ",".join(tags)  # our tags are letters, digits and '-' (`is_valid_tag`): a comma cannot be one
    if named.count(",") != max(len(tags) - 1, 0) or "" in tags:
        raise ValueError("orders_of: a tag cannot be empty or hold a comma")
    with connection.cursor() as cursor:
        cursor.execute(_ORDERS_OF_SQL, [owners, WORKING, ",".join(str(int(i)) for i in ids), named])
        rows = [_OrderRow.of(values) for values in json.loads(cursor.fetchone()[0])]
    legs: dict[int, list[_OrderRow]] = {}
    for row in rows:  # in id order, as `head.legs.all()` lists them
        if row.parent_id is not None:
            legs.setdefault(row.parent_id, []).append(row)
    for row in rows:
        if row.parent_id is None:
            orders[row.owner_id].append(_as_order(row, legs.get(row.pk, [])))
    return orders


_ORDER_COLUMNS = ("id", "parent_id", "owner_id", "status", "order_class", "tag", "option_symbol", "underlying", "side",
                  "order_type", "duration", "quantity", "limit_price", "stop_price", "filled_quantity",
                  "avg_fill_price", "reason", "created_at", "updated_at", "price_type")
_ORDER_DECIMALS = ("limit_price", "stop_price", "avg_fill_price")
_ORDERS_OF_SQL = f"""
    WITH heads AS (
        SELECT id FROM {PaperOrder._meta.db_table}
        WHERE parent_id IS NULL AND owner_id = ANY(%s) AND (status = ANY(%s)
              OR id = ANY(string_to_array(%s, ',')::bigint[]) OR tag = ANY(string_to_array(%s, ',')))
    )
    SELECT coalesce(json_agg(json_build_array({", ".join(
        f"{column}::text" if column in _ORDER_DECIMALS else column for column in _ORDER_COLUMNS)}) ORDER BY id),
        '[]')::text
    FROM {PaperOrder._meta.db_table}
    WHERE id IN (SELECT id FROM heads) OR parent_id IN (SELECT id FROM heads)
"""


class _OrderRow(namedtuple("_OrderRow", _ORDER_COLUMNS)):
    """One `PaperOrder` row as `_as_order` reads it (the same attribute names), from `orders_of`'s
    JSON: numerics come as their text (exact Decimals), timestamps in ISO 8601 (the connection's
    time zone is UTC, so they equal what the model's fields load)."""

    __slots__ = ()
    pk = property(itemgetter(0))

    @classmethod
    def of(cls, values: list) -> _OrderRow:
        for index in _DECIMAL_AT:
            if values[index] is not None:
                values[index] = Decimal(values[index])
        for index in _TIMESTAMP_AT:
            values[index] = datetime.fromisoformat(values[index]).astimezone(UTC)
        return cls._make(values)


_DECIMAL_AT = [_ORDER_COLUMNS.index(name) for name in _ORDER_DECIMALS]
_TIMESTAMP_AT = [_ORDER_COLUMNS.index(name) for name in ("created_at", "updated_at")]


def _check_exit_pair(sl_leg: OrderRequest, tp_leg: OrderRequest) -> None:
    """Tradier's OCO rules: one contract, two different order types, one duration."""
    if sl_leg.option_symbol != tp_leg.option_symbol:
        raise OrderRejected("OCO legs must be on the same contract.", tag=sl_leg.tag)
    if sl_leg.order_type == tp_leg.order_type:
        raise OrderRejected("OCO legs must have different order types.", tag=sl_leg.tag)
    if sl_leg.duration != tp_leg.duration:
        raise OrderRejected("OCO legs must have the same duration.", tag=sl_leg.tag)


def _lock_group(head_id: int) -> PaperOrder:
    """Lock a group parent first, then its legs in id order: the one lock order everyone uses."""
    head = PaperOrder.objects.select_for_update().get(pk=head_id)
    head.legs_locked = list(PaperOrder.objects.select_for_update().filter(parent_id=head_id).order_by("id"))
    return head


def working_groups(orders) -> tuple[list[int], list[str]]:
    """The group heads with working orders among `orders`, and the contracts they trade."""
    working = orders.filter(status__in=WORKING)
    heads = sorted({parent_id or pk for pk, parent_id in working.values_list("pk", "parent_id")})
    symbols = sorted(set(working.exclude(option_symbol="").values_list("option_symbol", flat=True)))
    return heads, symbols


def match_orders(orders, *, market: Market, rules: FillRules, on_arrival: bool = False) -> int:
    """Expire and fill the working orders among `orders` (a queryset), one transaction per group.
    (The monitor's cross-tenant cycle composes `working_groups` and `match_group` itself, so that
    each group commits on its own in the system context.)"""
    heads, symbols = working_groups(orders)
    if not heads:
        return 0
    now = market.now()
    quotes = market.quotes(symbols) if market.is_open(now) else {}
    return sum(match_group(head_id, quotes=quotes, market=market, rules=rules, now=now, on_arrival=on_arrival)
               for head_id in heads)


def match_group(head_id: int, *, quotes: dict[str, Quote], market: Market, rules: FillRules, now: datetime,
                on_arrival: bool = False) -> int:
    """Expire or fill one order group against `quotes`, in its own transaction. Returns fills made."""
    with transaction.atomic():
        head = _lock_group(head_id)
        lock_account(head.owner_id)
        return _match_one_group(head, quotes, now, rules, on_arrival, market.session_close(now))


def _match_one_group(head: PaperOrder, quotes: dict[str, Quote], now: datetime, rules: FillRules,
                     on_arrival: bool, session: datetime) -> int:
    members = head.legs_locked or [head]
    if head.status not in WORKING:
        return 0
    for member in members:
        if member.status in WORKING and member.expires_at and now >= member.expires_at:
            _set(member, status=OrderStatus.EXPIRED.value, updated_at=now)
    _end_with_unfilled_entry(head, members, now)
    if head.status not in WORKING:
        return 0
    if all(member.status not in WORKING for member in members):
        if head is not members[0]:
            _set(head, status=OrderStatus.EXPIRED.value, updated_at=now)
        return 0
    if head.order_class in SPREAD_CLASSES:
        return _match_spread(head, members, quotes, now, rules)
    for member in members:
        if member.status not in WORKING or not member.active:
            continue
        quote = quotes.get(member.option_symbol)
        if quote is None:
            continue
        first_look = member.last_session_close != session  # a gap since it last rested
        price = fill_price(member, quote, rules, on_arrival=on_arrival or first_look)
        if price is None:
            _set(member, triggered=member.triggered, last_session_close=session, updated_at=now)
            continue
        if shortfall := _cannot_settle(member, price, rules):
            for sibling in [head, *members]:
                if sibling.status in WORKING:
                    _set(sibling, status=OrderStatus.CANCELED.value, reason=shortfall, updated_at=now)
            return 0
        _fill(member, price, quote, now, rules)
        _after_fill(head, members, member, now)
        return 1
    return 0


@dataclass(frozen=True)
class DueGroup:
    """A working order group the cycle must take through `match_group` now, and whose account it is."""

    head_id: int
    owner_id: int


# Which working groups can change now, decided for all of them in one statement with the same
# rules as `fill_price` (the equivalence is a property test, brokers/tests/test_paper_due.py):
# a stop or stop-limit not yet triggered moves when its touch (the bid to sell, the ask to buy,
# above 0) reaches the stop; a market or triggered stop order fills whenever there is a touch; a
# limit or triggered stop-limit when the touch crosses its limit. Whether a look is the first of
# the session only sets the price, never whether the order executes, so it is not asked. The
# groups that cannot change have their quoted orders noted as looked at this session (the gap
# rule's `last_session_close`), in the same statement, so no list of ids travels twice; an order
# already noted this session is not written again, so a steady cycle writes no row at all. The
# table is the model's (`{table}`, filled in when run); `%%` is a literal `%` for the driver.
_GROUPS_DUE_SQL = """
WITH looked_at AS (  -- each working order with its contract's quote (symbol -> [bid, ask]), if any
    SELECT o.id, COALESCE(o.parent_id, o.id) AS head_id, o.owner_id, o.order_type, o.triggered, o.stop_price,
           o.limit_price, o.order_class = ANY(%(spread_classes)s) AS spread,
           o.expires_at IS NOT NULL AND o.expires_at <= %(now)s AS expired,
           o.order_type <> '' AND o.active AS tradable, o.side <> ALL(%(buy_sides)s) AS sell,
           %(quotes)s::jsonb -> o.option_symbol::text AS quote
      FROM {table} o
     WHERE o.status = ANY(%(working)s) AND (%(shards)s::int = 1 OR o.owner_id %% %(shards)s::int = %(shard)s::int)
),
working AS (
    SELECT id, head_id, owner_id, spread, expired, tradable AND quote IS NOT NULL AS looked,
           COALESCE(tradable AND touch > 0 AND CASE
               WHEN order_type IN ('stop', 'stop_limit') AND NOT triggered
                   THEN CASE WHEN sell THEN touch <= stop_price ELSE touch >= stop_price END
               WHEN order_type IN ('market', 'stop') THEN true
               ELSE CASE WHEN sell THEN touch >= limit_price ELSE touch <= limit_price END
           END, false) AS moves
      FROM (SELECT *, CASE WHEN sell THEN (quote ->> 0)::numeric ELSE (quote ->> 1)::numeric END AS touch
              FROM looked_at) AS touched
),
flagged AS (  -- each order with its group's verdict: a window over the group, no join back
    SELECT id, head_id, owner_id, looked,
           bool_or(expired OR moves) OVER (PARTITION BY head_id) AS due,
           bool_or(spread) OVER (PARTITION BY head_id) AS spread
      FROM working
),
noted AS (
    UPDATE {table} SET last_session_close = %(session)s, updated_at = %(now)s
     WHERE id = ANY(ARRAY(SELECT id FROM flagged WHERE looked AND NOT due AND NOT spread))
       AND status = ANY(%(working)s) AND last_session_close IS DISTINCT FROM %(session)s
)
SELECT head_id, min(owner_id), bool_or(due) FROM flagged WHERE due OR spread GROUP BY head_id ORDER BY min(id)
"""


def working_symbols(*, shard: tuple[int, int] = (0, 1)) -> list[str] | None:
    """The contracts the working orders (of the accounts whose id is `shard[0]` modulo
    `shard[1]`) trade, to quote once for the cycle; None when no order works at all."""
    index, count = shard
    working = PaperOrder.objects.filter(status__in=WORKING)
    if count > 1:
        working = working.alias(shard_of=F("owner_id") % count).filter(shard_of=index)
    symbols = set(working.order_by().values_list("option_symbol", flat=True).distinct())
    if not symbols:
        return None
    return sorted(symbol for symbol in symbols if symbol)


def groups_due(*, quotes: dict[str, Quote], now: datetime, session: datetime, rules: FillRules,
               shard: tuple[int, int] = (0, 1)) -> list[DueGroup]:
    """The working groups (of the accounts whose id is `shard[0]` modulo `shard[1]`) that
    `match_group` would expire, fill or trigger something in now, in the order of their first
    working order, as `group_may_change` decides each, but for every group at once: one statement
    decides the single orders and OCO/OTOCO groups in the database and notes the others as looked
    at this `session`; only spread groups (priced whole, `spread_fill`) are read and asked here.
    Most groups, most cycles, change nothing, and Python never sees them."""
    index, count = shard
    with connection.cursor() as cursor:
        cursor.execute(_GROUPS_DUE_SQL.format(table=PaperOrder._meta.db_table), {
            "quotes": json.dumps({symbol: [_exact(quote.bid), _exact(quote.ask)] for symbol, quote in quotes.items()}),
            "spread_classes": list(SPREAD_CLASSES),
            "buy_sides": [side.value for side in OrderSide if side.is_buy], "working": WORKING,
            "now": now, "session": session, "shards": count, "shard": index,
        })
        rows = cursor.fetchall()
    spread_heads = [head_id for head_id, _, due in rows if not due]
    movable = _spreads_may_change(spread_heads, quotes, now, rules, session) if spread_heads else set()
    return [DueGroup(head_id, owner_id) for head_id, owner_id, due in rows if due or head_id in movable]


def _exact(price: Decimal | None) -> str | None:
    """A quote's price as its decimal string, so the database compares the very number quoted."""
    return None if price is None else str(price)


def _spreads_may_change(heads: list[int], quotes: dict[str, Quote], now: datetime, rules: FillRules,
                        session: datetime) -> set[int]:
    """Which of these spread groups `group_may_change` says can change; the others' quoted tradable
    orders (a spread has none, but the rule is the same for every group) are noted as looked at."""
    groups: dict[int, list[PaperOrder]] = {}
    for order in PaperOrder.objects.filter(Q(pk__in=heads) | Q(parent_id__in=heads), status__in=WORKING).order_by("id"):
        groups.setdefault(order.parent_id or order.pk, []).append(order)
    movable, looked = set(), []
    for head_id, members in groups.items():
        if group_may_change(members, quotes, now, rules, session):
            movable.add(head_id)
        else:
            looked += [member.pk for member in _tradable(members) if member.option_symbol in quotes]
    if looked:
        PaperOrder.objects.filter(pk__in=looked, status__in=WORKING).exclude(last_session_close=session).update(
            last_session_close=session, updated_at=now)
    return movable


def _tradable(members: list[PaperOrder]) -> list[PaperOrder]:
    return [member for member in members if member.order_type and member.active]


def group_may_change(members: list[PaperOrder], quotes: dict[str, Quote], now: datetime, rules: FillRules,
                     session: datetime) -> bool:
    """Would `match_group` expire, fill or trigger something in this group (its working orders)
    now? Asked of copies, with `fill_price` itself: the reference `groups_due` is held to, and what
    decides a spread group."""
    if any(member.expires_at and now >= member.expires_at for member in members):
        return True
    spread = next((member for member in members if member.order_class in SPREAD_CLASSES), None)
    if spread is not None:  # all legs or none: the broker prices the whole spread
        return spread_fill(spread, [m for m in members if m.parent_id == spread.pk], quotes, rules) is not None
    for member in _tradable(members):
        quote = quotes.get(member.option_symbol)
        if quote is None:
            continue
        probe = copy.copy(member)
        first_look = member.last_session_close != session
        if fill_price(probe, quote, rules, on_arrival=first_look) is not None or probe.triggered != member.triggered:
            return True
    return False


def spread_fill(head: PaperOrder, legs: list[PaperOrder], quotes: dict[str, Quote],
                rules: FillRules) -> tuple[list[tuple[PaperOrder, Decimal, Quote]], Decimal] | None:
    """Each leg with the price it fills at now, and the net, if the whole spread executes now."""
    priced = price_legs([(leg.option_symbol, leg.side, leg.quantity) for leg in legs], quotes,
                        rules.spread_improvement_pct)
    if priced is None:
        return None
    net = net_price(priced, head.quantity)
    if not crosses(head.price_type, head.limit_price, net):
        return None
    return [(leg, each.price, each.quote) for leg, each in zip(legs, priced, strict=True)], net


def _match_spread(head: PaperOrder, legs: list[PaperOrder], quotes: dict[str, Quote], now: datetime,
                  rules: FillRules) -> int:
    """All legs fill together (in the caller's transaction, under the group's and the account's
    locks) or none does. Returns the fills made: one a leg."""
    fill = spread_fill(head, legs, quotes, rules)
    if fill is None:
        return 0
    priced, net = fill
    if shortfall := _spread_cannot_settle(head, legs, net, rules):
        for member in [head, *legs]:
            if member.status in WORKING:
                _set(member, status=OrderStatus.CANCELED.value, reason=shortfall, updated_at=now)
        return 0
    for leg, price, quote in priced:
        _fill(leg, price, quote, now, rules)
    _set(head, status=OrderStatus.FILLED.value, filled_quantity=head.quantity, avg_fill_price=net, updated_at=now)
    return len(priced)


def _spread_cannot_settle(head: PaperOrder, legs: list[PaperOrder], net: Decimal, rules: FillRules) -> str | None:
    """The fill-time check of a spread, on the account as it is now: closing legs still held,
    opening legs not against a position held the other way, no short left uncovered, and the
    buying power for the net and the change in what the short legs hold back."""
    ledger = Ledger.of(head.owner_id, rules)
    sides = [(leg.option_symbol, OrderSide(leg.side), leg.quantity) for leg in legs]
    for symbol, side, quantity in sides:
        if refusal := _leg_refusal(symbol, side, quantity, ledger.held(symbol)):
            return f"Canceled at the fill: {refusal}"
    before = ledger.positions()
    after = _after(before, sides)
    if refusal := _uncovered_refusal(after, sides, rules):
        return f"Canceled at the fill: {refusal}"
    contracts = sum(leg.quantity for leg in legs)
    available = ledger.buying_power() + spread_cost(head.reserve_price or Decimal(0), head.quantity, contracts, rules)
    cost = (spread_cost(net, head.quantity, contracts, rules)
            + worst_case_at_expiry(after) - worst_case_at_expiry(before))
    if cost > available:
        return f"Canceled at the fill: it needs ${cost:.2f}, ${available:.2f} is available."
    return None


def _end_with_unfilled_entry(head: PaperOrder, members: list[PaperOrder], now: datetime) -> None:
    """An OTOCO whose entry ended unfilled (expired, cancelled, refused) can never arm its exits:
    they end with it, in the same transaction, instead of resting until someone notices them."""
    entry = members[0]
    if head.order_class != "otoco" or head is entry or entry.status in WORKING or entry.filled_quantity:
        return
    for member in members[1:]:
        if member.status in WORKING:
            _set(member, status=OrderStatus.CANCELED.value, reason=f"The entry {entry.status} unfilled.",
                 updated_at=now)
    _set(head, status=entry.status, updated_at=now)


def _cannot_settle(order: PaperOrder, price: Decimal, rules: FillRules) -> str | None:
    """Checked again at the fill: the account may have changed since the order arrived (and a
    market order may fill above the ask it was reserved at)."""
    ledger = Ledger.of(order.owner_id, rules)
    remaining = order.quantity - order.filled_quantity
    if refusal := _single_leg_refusal(ledger, order.option_symbol, OrderSide(order.side), remaining, rules):
        return f"Canceled at the fill: {refusal}"
    if OrderSide(order.side).is_buy:
        available = ledger.buying_power() + order_cost(order.reserve_price or Decimal(0), remaining, rules)
        cost = order_cost(price, remaining, rules)
        if cost > available:
            return f"Canceled at the fill: it needs ${cost:.2f}, ${available:.2f} is available."
        return None
    held = ledger.held(order.option_symbol)
    if held < order.quantity:
        return f"Canceled at the fill: {order.quantity} {order.option_symbol} to sell, {held} held."
    return None


def _fill(order: PaperOrder, price: Decimal, quote: Quote, now: datetime, rules: FillRules) -> None:
    PaperFill.objects.create(
        owner_id=order.owner_id, order=order, option_symbol=order.option_symbol, side=order.side,
        quantity=order.quantity, price=price, commission=rules.commission_per_contract * order.quantity,
        bid=quote.bid, ask=quote.ask, mid=quote.mid, quote_time=quote.quoted_at, filled_at=now,
    )
    _set(order, status=OrderStatus.FILLED.value, filled_quantity=order.quantity, avg_fill_price=price,
         triggered=order.triggered, updated_at=now)
    if Ledger(order.owner_id, Decimal(0), rules).held(order.option_symbol) == 0:
        _close_position(order.owner_id, order.option_symbol)


def _close_position(owner_id: int, symbol: str) -> None:
    """The account holds none of the contract any more: its fills so far net to zero and leave
    the open positions the expiry settlement looks at (a later buy opens a new one)."""
    PaperFill.objects.filter(owner_id=owner_id, option_symbol=symbol, position_closed=False).update(
        position_closed=True)


def _after_fill(head: PaperOrder, members: list[PaperOrder], filled: PaperOrder, now: datetime) -> None:
    """OCO: a filled exit cancels its sibling in the same transaction. OTOCO: a filled entry
    arms both exits, which then work as an OCO."""
    if head is filled:
        return
    if head.order_class == "otoco" and filled.leg_index == 0:
        for member in members[1:]:
            _set(member, active=True, updated_at=now)
        return
    for member in members:
        if member is not filled and member.status in WORKING and (head.order_class == "oco" or member.leg_index):
            _set(member, status=OrderStatus.CANCELED.value, reason="OCO sibling filled", updated_at=now)
    _set(head, status=OrderStatus.FILLED.value, updated_at=now)


def settle_expired_positions(*, market: Market, rules: FillRules | None = None, now: datetime | None = None,
                             owner_id: int | None = None,
                             accounts: Callable[[QuerySet], QuerySet] | None = None) -> int:
    """Settle every position, long or short (of one account, or of every account the context can
    see), whose contract passed its expiry cutoff by `now`. One that waits for the underlying's
    close is settled by a later call; a settled position is no longer held, so calling again is
    harmless. Returns positions settled. `accounts` narrows the fills read to some accounts (a
    sharded monitor cycle's, `monitoring/sharding.py`)."""
    rules, now = rules or FillRules.from_settings(), now or market.now()
    # Long legs first: a spread's long leg pays in before its short leg is assigned, so the cash
    # held back for the short never has to cover the payout alone.
    held = sorted(expired_positions(now=now, owner_id=owner_id, accounts=accounts),
                  key=lambda position: position["net"] < 0)
    closes: dict[tuple[str, date, str], Decimal | None] = {}
    settled = 0
    for position in held:
        owner, symbol = position["owner_id"], position["option_symbol"]
        contract = parse_symbol(symbol)
        at = settlement.settles_at(contract.root, market.expiry_cutoff(contract.expiry), market.next_open)
        if now < at:
            continue
        try:  # one position's books (or a market-data failure) must not stop the others'; the next call retries
            style = settlement.settlement_style(contract.root)
            key = (_underlying(owner, symbol) or underlying_of_root(contract.root), contract.expiry, style)
            if key not in closes:
                closes[key] = (market.underlying_opening(key[0], at) if style == settlement.AM
                               else market.underlying_close(key[0], key[1]))
            if closes[key] is None:
                logger.warning("paper expiry: no settlement price of %s for %s yet; %s of user %s waits",
                               key[0], key[1], symbol, owner)
                continue
            settled += _settle_position(owner, symbol, key[0], closes[key], market=market, rules=rules, now=now,
                                        at=at)
        except Exception:
            logger.exception("paper expiry: %s of user %s could not be settled", symbol, owner)
    return settled


def expired_positions(*, now: datetime, owner_id: int | None = None,
                      accounts: Callable[[QuerySet], QuerySet] | None = None):
    """Net positions (`owner_id`, `option_symbol`, `net`; negative when short) in contracts
    expiring on or before `now`'s date: a superset of those past their cutoff (a cutoff falls on
    or before the expiry date in New York, and the UTC date is never behind New York's). Reads
    only fills of positions still open, through the partial index on their expiry, so the history
    of closed positions is never read however long it grows. One aggregate, no join: most cycles settle nothing."""
    fills = PaperFill.objects.all() if owner_id is None else PaperFill.objects.filter(owner_id=owner_id)
    fills = accounts(fills) if accounts is not None else fills
    fills = fills.filter(position_closed=False, expiry__lte=now.astimezone(UTC).date())
    return (fills.order_by().values("owner_id", "option_symbol")
            .annotate(net=Sum(Case(When(side__in=BUY_SIDES, then=F("quantity")), default=-F("quantity"))))
            .exclude(net=0))


def _underlying(owner_id: int, symbol: str) -> str:
    """What the orders on the contract named as its underlying (SPX for SPXW options)."""
    named = PaperOrder.objects.filter(owner_id=owner_id, option_symbol=symbol).exclude(underlying="")
    return named.values_list("underlying", flat=True).first() or ""


def _settle_position(owner_id: int, symbol: str, underlying: str, close: Decimal, *, market: Market,
                     rules: FillRules, now: datetime, at: datetime) -> int:
    """Orders on the contract end first (each group under its own lock, as matching does), then
    the contracts still held are sold to the expiry at intrinsic value under the account's lock;
    contracts held short are bought back from it at intrinsic value (in the money: assigned, and
    the short pays it; an index option's is settled in cash). `at`: when the settlement value was
    fixed (the cutoff; an AM-settled index option's expiry-day open), the settlement's time."""
    heads, _ = working_groups(PaperOrder.objects.filter(owner_id=owner_id, option_symbol=symbol))
    for head_id in heads:
        match_group(head_id, quotes={}, market=market, rules=rules, now=now)
    contract = parse_symbol(symbol)
    cutoff = at
    value = intrinsic_value(contract.option_type, contract.strike, close)
    with transaction.atomic():
        lock_account(owner_id)
        held = Ledger(owner_id, Decimal(0), rules).held(symbol)
        if held == 0:
            return 0
        quantity, side = abs(held), OrderSide.SELL_TO_CLOSE if held > 0 else OrderSide.BUY_TO_CLOSE
        how = "worthless" if not value else (
            f"in the money, settled in cash at ${value}" if settlement.cash_settled(contract.root) else
            f"in the money, settled at ${value}" if held > 0 else f"in the money, assigned: bought back at ${value}")
        order = PaperOrder.objects.create(
            owner_id=owner_id, order_class="option", option_symbol=symbol, underlying=underlying,
            side=side.value, quantity=quantity, status=OrderStatus.FILLED.value,
            filled_quantity=quantity, avg_fill_price=value, created_at=cutoff, updated_at=cutoff,
            reason=f"Expired {how} ({underlying} {_settled_on(contract.root)} at ${close}).",
        )
        PaperFill.objects.create(owner_id=owner_id, order=order, option_symbol=symbol, side=order.side,
                                 quantity=quantity, price=value, commission=Decimal(0), filled_at=cutoff,
                                 settlement=True, position_closed=True)
        _close_position(owner_id, symbol)
    logger.info("paper expiry: %s %s of user %s expired %s", held, symbol, owner_id, how)
    return 1


def _settled_on(root: str) -> str:
    """The settlement price's name in a settlement's reason (an AM index settles on its opening)."""
    return "opened" if settlement.settlement_style(root) == settlement.AM else "closed"


def _set(order: PaperOrder, **changes) -> None:
    for name, value in changes.items():
        setattr(order, name, value)
    order.save(update_fields=list(changes))


def _member(enum, value):
    """`enum(value)` by a dictionary lookup: the sync builds tens of thousands of orders a cycle,
    and an Enum call costs a microsecond or two. An unknown value still raises as the call would."""
    member = _MEMBERS[enum].get(value)
    return member if member is not None else enum(value)


_MEMBERS = {enum: {member.value: member for member in enum}
            for enum in (OrderStatus, OrderSide, OrderType, OrderDuration, SpreadPriceType)}


def _as_order(row: PaperOrder, legs: list[PaperOrder]) -> Order:
    fill = None
    if row.filled_quantity and row.avg_fill_price is not None:
        fill = Fill(quantity=row.filled_quantity, price=row.avg_fill_price, at=row.updated_at)
    return Order(
        id=str(row.pk), status=_member(OrderStatus, row.status), order_class=row.order_class, tag=row.tag or None,
        option_symbol=row.option_symbol or None, underlying=row.underlying or None,
        side=_member(OrderSide, row.side) if row.side else None,
        order_type=_member(OrderType, row.order_type) if row.order_type else None,
        duration=_member(OrderDuration, row.duration) if row.duration else None,
        quantity=row.quantity or None, limit_price=row.limit_price, stop_price=row.stop_price,
        filled_quantity=row.filled_quantity, remaining_quantity=(row.quantity - row.filled_quantity) or None,
        fill=fill, reason=row.reason or None, created_at=row.created_at, updated_at=row.updated_at,
        legs=tuple(_as_order(leg, []) for leg in legs),
        price_type=_member(SpreadPriceType, row.price_type) if row.price_type else None,
    )
