"""The one contract every broker speaks: typed domain objects in, typed domain objects out.

Callers (trade services, the monitor) never see raw broker JSON, so a broker can be swapped for
another (Tradier sandbox, Tradier live, the local paper broker) without touching them. Prices are
`Decimal` and times are aware UTC datetimes everywhere, because money and clocks are where a
silent float or a naive datetime costs real money.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from math import gcd
from typing import ClassVar, Protocol, runtime_checkable

from brokers.occ import parse_symbol, underlying_of_root

# --- Vocabulary -------------------------------------------------------------------------------


class OrderStatus(StrEnum):
    """Tradier's order statuses, which the other brokers reuse so that one enum covers all."""

    PENDING = "pending"
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    EXPIRED = "expired"
    CANCELED = "canceled"
    REJECTED = "rejected"
    ERROR = "error"

    @property
    def is_final(self) -> bool:
        """A final order never changes again: stop watching it."""
        return self in _FINAL

    @property
    def is_working(self) -> bool:
        """Still able to fill (or be rejected): keep watching it."""
        return not self.is_final


_FINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.EXPIRED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.ERROR}
)


class OrderSide(StrEnum):
    BUY_TO_OPEN = "buy_to_open"
    BUY_TO_CLOSE = "buy_to_close"
    SELL_TO_OPEN = "sell_to_open"
    SELL_TO_CLOSE = "sell_to_close"

    @property
    def is_buy(self) -> bool:
        return self in (OrderSide.BUY_TO_OPEN, OrderSide.BUY_TO_CLOSE)


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"

    @property
    def needs_limit_price(self) -> bool:
        return self in (OrderType.LIMIT, OrderType.STOP_LIMIT)

    @property
    def needs_stop_price(self) -> bool:
        return self in (OrderType.STOP, OrderType.STOP_LIMIT)


class OrderDuration(StrEnum):
    """`day` orders expire at the close; `gtc` ones survive until filled or cancelled."""

    DAY = "day"
    GTC = "gtc"


class OrderPurpose(StrEnum):
    """Why an order exists; it is the last word of the order's tag."""

    ENTRY = "entry"
    STOP_LOSS = "sl"
    TAKE_PROFIT = "tp"
    CLOSE = "close"
    PART = "part"  # a sell-to-close of part of the position (a scale-out, a partial close)


# --- Order tags -------------------------------------------------------------------------------
# Tags are the idempotency key: an order whose placement timed out is found again by its tag, so
# a retry can never double it. Tradier accepts at most 255 letters, digits and '-'.

# Orders of real-money (live) trades start with `live-`, so anyone reading the broker's order list,
# a statement or a log line sees at once which orders are real.

LIVE_TAG_PREFIX = "live-"
_TAG = re.compile(r"^[A-Za-z0-9-]{1,255}$")
# A part sale's sell carries its sale's number (`to-42-part3`): each sale's tag is its own.
_TAG_PARTS = re.compile(r"^(?:live-)?to-(?P<trade>[A-Za-z0-9-]+)-(?P<purpose>entry|sl|tp|close|part)"
                        r"(?P<sale>(?<=part)[0-9]+)?$")


def order_tag(trade_id: int | str, purpose: OrderPurpose | str, *, live: bool = False) -> str:
    """`to-<trade_id>-<purpose>`, e.g. `to-42-sl`; `live-to-42-sl` for a live trade's order."""
    purpose = OrderPurpose(purpose)
    tag = f"{LIVE_TAG_PREFIX if live else ''}to-{trade_id}-{purpose.value}"
    if not _TAG.match(tag):
        raise ValueError(f"Trade id {trade_id!r} cannot make an order tag: only letters, digits and '-' are allowed.")
    return tag


def parse_order_tag(tag: str | None) -> tuple[str, OrderPurpose] | None:
    """The trade id and purpose of one of our tags; None for a tag we did not write."""
    match = _TAG_PARTS.match(tag or "")
    if not match:
        return None
    return match["trade"], OrderPurpose(match["purpose"])


def is_live_tag(tag: str | None) -> bool:
    """One of our tags, on the order of a live (real-money) trade."""
    return parse_order_tag(tag) is not None and tag.startswith(LIVE_TAG_PREFIX)


def is_valid_tag(tag: str) -> bool:
    return bool(_TAG.match(tag or ""))


# --- Requests and results ---------------------------------------------------------------------


def _require_decimal(name: str, value: object) -> None:
    if value is not None and not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal (never a float), got {type(value).__name__}.")


@dataclass(frozen=True)
class OrderRequest:
    """One single-leg option order, or one leg of an OCO/OTOCO order.

    `underlying` defaults to the OCC root; pass it when they differ (SPXW options trade on SPX).
    For OCO the stop-loss leg's tag names the whole order, for OTOCO the entry's: a broker order
    has one tag, and that is the leg that starts it.
    """

    option_symbol: str
    side: OrderSide
    quantity: int
    order_type: OrderType
    tag: str
    duration: OrderDuration = OrderDuration.DAY
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    underlying: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "side", OrderSide(self.side))
        object.__setattr__(self, "order_type", OrderType(self.order_type))
        object.__setattr__(self, "duration", OrderDuration(self.duration))
        contract = parse_symbol(self.option_symbol)
        if not self.underlying:
            object.__setattr__(self, "underlying", contract.root)
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int) or self.quantity <= 0:
            raise ValueError(f"Quantity must be a positive whole number of contracts, got {self.quantity!r}.")
        _require_decimal("limit_price", self.limit_price)
        _require_decimal("stop_price", self.stop_price)
        for name, needed, value in (
            ("limit_price", self.order_type.needs_limit_price, self.limit_price),
            ("stop_price", self.order_type.needs_stop_price, self.stop_price),
        ):
            if needed and value is None:
                raise ValueError(f"A {self.order_type} order needs a {name}.")
            if not needed and value is not None:
                raise ValueError(f"A {self.order_type} order takes no {name}.")
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}.")
        if not is_valid_tag(self.tag):
            raise ValueError(f"Order tag {self.tag!r} must be 1-255 letters, digits or '-'.")


class StockSide(StrEnum):
    """The sides of a combo order's stock leg (Tradier's equity sides)."""

    BUY = "buy"
    SELL = "sell"
    SELL_SHORT = "sell_short"
    BUY_TO_COVER = "buy_to_cover"

    @property
    def is_buy(self) -> bool:
        return self in (StockSide.BUY, StockSide.BUY_TO_COVER)


# Tradier's order classes of a spread: options only, or with one stock leg.
SPREAD_CLASSES = ("multileg", "combo")
CENT = Decimal("0.01")


def spread_units(quantities: Iterable[int]) -> int:
    """How many of the smallest whole spread the legs' quantities make (2, 4, 2 is 2 × 1×2×1)."""
    units = 0
    for quantity in quantities:
        units = gcd(units, quantity)
    return units


class SpreadPriceType(StrEnum):
    """How a multileg or combo order is priced: at market, for a net debit or a net credit (a
    limit on the net, per share), or even (the legs net to zero)."""

    MARKET = "market"
    DEBIT = "debit"
    CREDIT = "credit"
    EVEN = "even"

    @property
    def needs_price(self) -> bool:
        return self in (SpreadPriceType.DEBIT, SpreadPriceType.CREDIT)


@dataclass(frozen=True)
class SpreadLeg:
    """One leg of a multileg or combo order: an option leg (`symbol` an OCC symbol, an `OrderSide`,
    `quantity` in contracts) or a combo's stock leg (`symbol` the ticker, a `StockSide`,
    `quantity` in shares). The spread's ratio lives in the legs' quantities (a 1×2 is 1 and 2)."""

    symbol: str
    side: OrderSide | StockSide
    quantity: int

    def __post_init__(self) -> None:
        side = self.side.value if isinstance(self.side, StrEnum) else self.side
        is_option = side in OrderSide._value2member_map_
        object.__setattr__(self, "side", OrderSide(side) if is_option else StockSide(side))
        if is_option:
            parse_symbol(self.symbol)
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int) or self.quantity <= 0:
            raise ValueError(f"A leg's quantity must be a positive whole number, got {self.quantity!r}.")

    @property
    def is_stock(self) -> bool:
        return isinstance(self.side, StockSide)


@dataclass(frozen=True)
class SpreadOrderRequest:
    """One multileg order (2–4 option legs) or combo order (one stock leg and 1–2 option legs):
    every leg fills together or none does. `price` is the net per share, positive, for a debit or
    a credit, and absent for market and even. Brokers seldom hold a bracket on such an order, so
    its exits are watched on the net mark and sent as one closing spread order (docs/spreads.md)."""

    underlying: str
    legs: tuple[SpreadLeg, ...]
    price_type: SpreadPriceType
    tag: str
    price: Decimal | None = None
    duration: OrderDuration = OrderDuration.DAY

    def __post_init__(self) -> None:
        object.__setattr__(self, "price_type", SpreadPriceType(self.price_type))
        object.__setattr__(self, "duration", OrderDuration(self.duration))
        object.__setattr__(self, "legs", tuple(self.legs))
        _require_decimal("price", self.price)
        stock = [leg for leg in self.legs if leg.is_stock]
        options = [leg for leg in self.legs if not leg.is_stock]
        if stock and (len(stock) > 1 or not 1 <= len(options) <= 2):
            raise ValueError("A combo order has one stock leg and one or two option legs.")
        if not stock and not 2 <= len(options) <= 4:
            raise ValueError("A multileg order has two to four option legs.")
        if len({leg.symbol for leg in self.legs}) != len(self.legs):
            raise ValueError("Each leg of a spread order must be a different contract.")
        for leg in options:
            root = parse_symbol(leg.symbol).root  # the exact root, or the ticker it trades on (SPXW: SPX)
            if self.underlying not in (root, underlying_of_root(root)):
                raise ValueError(f"Leg {leg.symbol} is not an option on {self.underlying}.")
        for leg in stock:
            if leg.symbol != self.underlying:
                raise ValueError(f"The stock leg {leg.symbol} is not {self.underlying}.")
        if self.price_type.needs_price and (self.price is None or self.price <= 0):
            raise ValueError(f"A {self.price_type} order needs a positive net price.")
        if self.price is not None and self.price != self.price.quantize(CENT):
            raise ValueError(f"A spread's net price is in whole cents, got {self.price}.")
        if not self.price_type.needs_price and self.price is not None:
            raise ValueError(f"A {self.price_type} order takes no price.")
        if not is_valid_tag(self.tag):
            raise ValueError(f"Order tag {self.tag!r} must be 1-255 letters, digits or '-'.")

    @property
    def order_class(self) -> str:
        """Tradier's `class`: `combo` when a leg is stock, else `multileg`."""
        return "combo" if any(leg.is_stock for leg in self.legs) else "multileg"


@dataclass(frozen=True)
class Fill:
    """What has executed so far: `price` is the average over `quantity` contracts."""

    quantity: int
    price: Decimal
    at: datetime | None


@dataclass(frozen=True)
class Order:
    """An order as the broker sees it now. OCO/OTOCO parents keep their details on `legs`."""

    id: str
    status: OrderStatus
    order_class: str
    tag: str | None = None
    option_symbol: str | None = None
    underlying: str | None = None
    side: OrderSide | StockSide | None = None  # a combo's stock leg has a StockSide
    order_type: OrderType | None = None
    duration: OrderDuration | None = None
    quantity: int | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    filled_quantity: int = 0
    remaining_quantity: int | None = None
    fill: Fill | None = None
    reason: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    legs: tuple[Order, ...] = field(default=())
    price_type: SpreadPriceType | None = None  # a multileg or combo parent's: market, debit, credit or even

    def leg(self, order_type: OrderType) -> Order | None:
        """The leg of this type (the stop-loss leg of an OCO is its STOP or STOP_LIMIT leg)."""
        return next((leg for leg in self.legs if leg.order_type == order_type), None)


@dataclass(frozen=True)
class Greeks:
    delta: Decimal | None
    gamma: Decimal | None
    theta: Decimal | None
    vega: Decimal | None
    rho: Decimal | None
    mid_iv: Decimal | None
    smv_vol: Decimal | None
    updated_at: datetime | None


@dataclass(frozen=True)
class Quote:
    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    bid_size: int | None = None
    ask_size: int | None = None
    volume: int | None = None
    bid_at: datetime | None = None
    ask_at: datetime | None = None
    traded_at: datetime | None = None
    greeks: Greeks | None = None
    open_interest: int | None = None  # options: contracts outstanding, as of the last close

    @property
    def mid(self) -> Decimal | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2

    @property
    def quoted_at(self) -> datetime | None:
        """When the book was last seen: the later of the bid and ask times."""
        times = [moment for moment in (self.bid_at, self.ask_at) if moment is not None]
        return max(times) if times else None


@dataclass(frozen=True)
class OptionChainEntry:
    symbol: str
    underlying: str
    expiry: date
    strike: Decimal
    option_type: str  # "CALL" or "PUT", as in brokers.occ
    quote: Quote
    open_interest: int | None = None


@dataclass(frozen=True)
class Position:
    """Positive quantity is long, negative short (a Decimal: an equity position may be
    fractional); cost basis is the total paid, not per contract."""

    symbol: str
    quantity: Decimal
    cost_basis: Decimal
    acquired_at: datetime | None


@dataclass(frozen=True)
class AccountBalance:
    account_number: str
    account_type: str
    total_equity: Decimal
    total_cash: Decimal
    option_buying_power: Decimal
    market_value: Decimal
    open_pl: Decimal
    close_pl: Decimal
    pending_orders_count: int


# --- Errors -----------------------------------------------------------------------------------


class BrokerError(Exception):
    """Anything the broker could not do. Messages never carry tokens."""


class BrokerAuthError(BrokerError):
    """The token is invalid, expired or meant for the other environment: re-authenticate, don't retry."""


class BrokerRateLimited(BrokerError):
    """Too many requests: waiting longer than the caller allows. `retry_after` says how long, if known."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BrokerUnavailable(BrokerError):
    """The broker is down, in maintenance, or not answering: try again later."""


class BrokerMaintenance(BrokerUnavailable):
    """The broker answered with its maintenance page: it acted on nothing in the request."""


class OrderRejected(BrokerError):
    """The broker refused the order; `reason` is its own words."""

    def __init__(self, reason: str, *, order_id: str | None = None, tag: str | None = None) -> None:
        super().__init__(f"Order rejected by the broker: {reason}")
        self.reason = reason
        self.order_id = order_id
        self.tag = tag


class BrokerForbidden(BrokerError):
    """The broker knows the token but will not let it do this (HTTP 403): the account is not
    approved or permitted for it, or trading on it is restricted. Unlike `BrokerAuthError` a new
    token does not help; asking again does not either: the trader fixes it at the broker."""


class StopModifyRefused(BrokerError):
    """The broker would not move this stop in place. Nothing changed at the broker: the old stop
    still works (unless `finalized`: the order had already filled, expired or been cancelled).
    Fall back on cancel-and-replace, which also learns whether the order filled meanwhile."""

    def __init__(self, reason: str, *, order_id: str, finalized: bool = False) -> None:
        super().__init__(f"The broker did not modify order {order_id}: {reason}")
        self.reason = reason
        self.order_id = order_id
        self.finalized = finalized


class StopModifyUnsupported(StopModifyRefused):
    """This broker (or this kind of order at it) cannot modify a stop in place at all."""


class ModifyBudgetSpent(BrokerRateLimited):
    """The account's budget of stop modifications is spent for now; nothing was sent. Not a cue to
    cancel and replace (that costs more requests): keep the working stop and try after `retry_after`."""


class StopModifyOutcomeUnknown(BrokerUnavailable):
    """The modification was sent but no answer came back: the stop is either the old or the new
    one. Read the order (`get_order(order_id)`) to learn which before doing anything else."""

    def __init__(self, message: str, *, order_id: str) -> None:
        super().__init__(message)
        self.order_id = order_id


class OrderOutcomeUnknown(BrokerUnavailable):
    """A placement was sent but its outcome could not be learnt, even by looking its tag up.

    The order may exist. Look it up with `find_order_by_tag(tag)` before placing it again.
    """

    def __init__(self, message: str, *, tag: str) -> None:
        super().__init__(message)
        self.tag = tag


# --- The contract -----------------------------------------------------------------------------


def modify_stop(broker: object, order_id: str, stop_price: Decimal) -> Order:
    """`broker.modify_stop(...)`, or `StopModifyUnsupported` for a broker that has none (a test
    double, a wrapper): the safe default is the caller's cancel-and-replace, never a silent no-op."""
    modify = getattr(broker, "modify_stop", None)
    if modify is None:
        raise StopModifyUnsupported("this broker cannot modify orders in place", order_id=order_id)
    return modify(order_id, stop_price)



@runtime_checkable
class BrokerProvider(Protocol):
    """What trade services and the monitor may ask of any broker.

    Placement methods return only once the broker has accepted or refused the order (a refusal
    raises `OrderRejected`); an order can still come back `PENDING` if the broker is slow to
    decide, and the caller then watches it with `get_order`.
    """

    supports_otoco: ClassVar[bool]

    def get_quotes(self, symbols: Iterable[str]) -> dict[str, Quote]: ...

    def get_option_chain(self, symbol: str, expiry: date) -> list[OptionChainEntry]: ...

    def place_order(self, request: OrderRequest) -> Order: ...

    def place_oco_order(self, sl_leg: OrderRequest, tp_leg: OrderRequest) -> Order: ...

    def place_otoco_order(self, entry: OrderRequest, sl_leg: OrderRequest, tp_leg: OrderRequest) -> Order: ...

    def place_spread_order(self, request: SpreadOrderRequest) -> Order:
        """Places a multileg or combo order, all legs or none (`OrderRejected` if refused). The
        parent comes back with `order_class` "multileg"/"combo", its `price_type`, `limit_price`
        the net price, and one `legs` entry per leg (symbol, side, quantity, fill); its fill price
        is the net per share of one unit, debit positive and credit negative."""
        ...

    def cancel_order(self, order_id: str) -> Order:
        """Returns the order's state afterwards: it may have filled before the cancel arrived."""
        ...

    def modify_stop(self, order_id: str, stop_price: Decimal) -> Order:
        """Moves the stop price of a working stop order, or of the stop leg of a working OCO/OTOCO
        (`order_id` is the leg's id or its parent's), in place. Returns the stop order as it now
        stands: its `id` may differ from the one given (a broker that replaces the order to
        modify it), and the caller records it. Raises `StopModifyRefused` (or its subclass
        `StopModifyUnsupported`) when the broker will not; `ModifyBudgetSpent` when the account's
        modification budget is spent (nothing sent); `StopModifyOutcomeUnknown` when no answer came."""
        ...

    def get_order(self, order_id: str) -> Order: ...

    def get_orders(self) -> list[Order]: ...

    def find_order_by_tag(self, tag: str) -> Order | None:
        """The newest live or filled order carrying this tag, or None."""
        ...

    def get_positions(self) -> list[Position]: ...

    def get_account_balance(self) -> AccountBalance: ...
