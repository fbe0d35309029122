"""How the local paper broker prices a spread (a multileg order): plain arithmetic on quotes.

Each leg trades at its natural side, as a market maker would fill it: a leg bought pays the ask,
a leg sold gets the bid. A configurable share of the half-spread comes back to the trader (price
improvement toward the mid, `improvement_pct`: 0 is the natural price, 100 the mid), counted in
whole cents and rounded down, so a fill is never kinder than the model says and stays on the
penny grid. A leg without a usable quote on its side prices nothing: a spread fills whole or not
at all. One exception: a leg sold to close whose quote exists but bids 0.00 (a far wing nobody
wants) prices at 0, or improved toward the mid, so that it never blocks the spread's exit; a leg
sold to open at 0.00 is still refused.

The net is per share of one spread unit, debit positive: Σ bought prices − Σ sold prices, each
times its leg's ratio (a 1×2×1 butterfly's body counts twice). A spread of 2 contracts a leg is 2
units of the 1×1 spread; the units are the greatest common divisor of the legs' quantities.

Short legs are held against with the two pure functions at the end (`is_covered`,
`worst_case_at_expiry`), which the trades layer's defined-risk rule uses too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, Decimal

from .base import CENT, OrderSide, Quote, SpreadPriceType
from .occ import exercise_value, parse_symbol, underlying_of_root

SHARES_PER_CONTRACT = 100


@dataclass(frozen=True)
class PricedLeg:
    symbol: str
    is_buy: bool
    quantity: int
    price: Decimal
    quote: Quote


def leg_price(is_buy: bool, quote: Quote, improvement_pct: Decimal, *, closing: bool = False) -> Decimal | None:
    """The natural side of `quote`, improved toward the mid; None when that side is not quoted.
    A sale that `closing` a position takes a 0.00 bid (it gives the contract away rather than
    keep a spread open for want of a bidder on a worthless wing)."""
    touch = quote.ask if is_buy else quote.bid
    if touch is None or touch < 0 or (touch == 0 and (is_buy or not closing)):
        return None
    if quote.bid is None or quote.ask is None or quote.ask <= quote.bid or not improvement_pct:
        return touch
    improvement = ((quote.ask - quote.bid) / 2 * improvement_pct / 100).quantize(CENT, rounding=ROUND_DOWN)
    return touch - improvement if is_buy else touch + improvement


def price_legs(legs: Iterable[tuple[str, OrderSide | str, int]], quotes: Mapping[str, Quote],
               improvement_pct: Decimal) -> list[PricedLeg] | None:
    """Every leg (symbol, side, quantity) priced against `quotes`, or None if any leg cannot be."""
    priced = []
    for symbol, side, quantity in legs:
        quote = quotes.get(symbol)
        side = OrderSide(side)
        closing = side == OrderSide.SELL_TO_CLOSE
        price = leg_price(side.is_buy, quote, improvement_pct, closing=closing) if quote is not None else None
        if price is None:
            return None
        priced.append(PricedLeg(symbol, side.is_buy, quantity, price, quote))
    return priced


def net_price(priced: Iterable[PricedLeg], units: int) -> Decimal:
    """Per share of one spread unit: what the spread costs (positive, a debit) or brings (negative)."""
    return sum(((leg.price if leg.is_buy else -leg.price) * (leg.quantity // units) for leg in priced), Decimal(0))


def crosses(price_type: SpreadPriceType | str, price: Decimal | None, net: Decimal) -> bool:
    """Does a spread order of this type and net price execute at `net`? A debit at or under its
    price, a credit at or over its, even when it costs nothing, market always."""
    kind = SpreadPriceType(price_type)
    if kind == SpreadPriceType.MARKET:
        return True
    if kind == SpreadPriceType.DEBIT:
        return net <= price
    if kind == SpreadPriceType.CREDIT:
        return -net >= price
    return net <= 0


# --- what short legs hold ---------------------------------------------------------------------


def is_covered(legs: Iterable[tuple[str, date, int]]) -> bool:
    """Every short contract among `legs` (right, expiry, signed contracts: sold negative) of one
    underlying is paired with a long one of the same right expiring no earlier.

    Such a pairing exists exactly when, for every date, the shorts expiring on or after it are no
    more than the longs expiring on or after it (Hall's condition on nested sets). One expiry: per
    right, no more contracts sold than bought."""
    legs = list(legs)
    for right in ("CALL", "PUT"):
        mine = [(expiry, signed) for kind, expiry, signed in legs if kind == right]
        for day in {expiry for expiry, signed in mine if signed < 0}:
            if sum(signed for expiry, signed in mine if expiry >= day) < 0:
                return False
    return True


def by_underlying(positions: Mapping[str, int]) -> dict[str, list[tuple[str, date, Decimal, int]]]:
    """Held contracts (OCC symbol → signed contracts) per underlying ticker (SPXW's on SPX), each
    as (right, expiry, strike, signed contracts)."""
    grouped: dict[str, list[tuple[str, date, Decimal, int]]] = defaultdict(list)
    for symbol, signed in positions.items():
        if signed:
            contract = parse_symbol(symbol)
            grouped[underlying_of_root(contract.root)].append(
                (contract.option_type, contract.expiry, contract.strike, signed))
    return dict(grouped)


def uncovered_underlyings(positions: Mapping[str, int]) -> list[str]:
    """The underlyings among `positions` where some short contract has no long to pair with."""
    return sorted(underlying for underlying, legs in by_underlying(positions).items()
                  if not is_covered((right, expiry, signed) for right, expiry, _, signed in legs))


def worst_case_at_expiry(positions: Mapping[str, int]) -> Decimal:
    """Dollars to hold against `positions`' short legs: per underlying, the most the legs could
    pay out net at expiry, max over an underlying of 0 and every strike of
    −Σ signed × 100 × exercise value (never below 0). Premiums are not counted: what the shorts
    brought already sits in cash. Covered legs make this exact (the payout is piecewise linear with
    kinks at the strikes, and never falls beyond the highest once calls are covered); an
    uncovered call's loss beyond the highest strike is not held (only the opt-in allows one)."""
    total = Decimal(0)
    for legs in by_underlying(positions).values():
        prices = {Decimal(0), *(strike for _, _, strike, _ in legs)}
        payout = max(-sum((signed * SHARES_PER_CONTRACT * exercise_value(right, strike, price)
                           for right, _, strike, signed in legs), Decimal(0)) for price in prices)
        total += max(payout, Decimal(0))
    return total
