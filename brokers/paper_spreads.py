"""How the local paper broker prices a spread (a multileg order): plain arithmetic on quotes.

Each leg trades at its natural side, as a market maker would fill it: a leg bought pays the ask,
a leg sold gets the bid. A configurable share of the half-spread comes back to the trader (price
improvement toward the mid, `improvement_pct`: 0 is the natural price, 100 the mid), counted in
whole cents and rounded down, so a fill is never kinder than the model says and stays on the
penny grid. A leg without a usable quote on its side prices nothing: a spread fills whole or not
at all.

The net is per share of one spread unit, debit positive: Σ bought prices − Σ sold prices, each
times its leg's ratio (a 1×2×1 butterfly's body counts twice). A spread of 2 contracts a leg is 2
units of the 1×1 spread; the units are the greatest common divisor of the legs' quantities.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from math import gcd

from .base import OrderSide, Quote, SpreadPriceType

SPREAD_CLASSES = ("multileg", "combo")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class PricedLeg:
    symbol: str
    is_buy: bool
    quantity: int
    price: Decimal
    quote: Quote


def spread_units(quantities: Iterable[int]) -> int:
    """How many of the smallest whole spread the legs' quantities make (2, 4, 2 is 2 × 1×2×1)."""
    units = 0
    for quantity in quantities:
        units = gcd(units, quantity)
    return units


def leg_price(is_buy: bool, quote: Quote, improvement_pct: Decimal) -> Decimal | None:
    """The natural side of `quote`, improved toward the mid; None when that side is not quoted."""
    touch = quote.ask if is_buy else quote.bid
    if touch is None or touch <= 0:
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
        is_buy = OrderSide(side).is_buy
        price = leg_price(is_buy, quote, improvement_pct) if quote is not None else None
        if price is None:
            return None
        priced.append(PricedLeg(symbol, is_buy, quantity, price, quote))
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
