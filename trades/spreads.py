"""Multi-leg option positions (issue 19): the numbers of a spread, before and after it is sent.

Pure: dataclasses and Decimal, no database, no broker, no clock. The strategy builder, the risk
limits, the buying-power check and the monitor's exits ask these functions; none of them works a
spread's numbers out again. Formulas and conventions: docs/spreads.md.

* A premium is per share, as quoted; a contract is 100 shares. Money this module answers is in
  dollars for the whole position (ratio × quantity × 100 per leg), exact, never rounded, except
  the Black–Scholes values, which are a model and come rounded to the cent.
* A leg is LONG (bought) or SHORT (sold), `ratio` contracts per spread; the position holds
  `quantity` spreads. The net premium per spread is Σ side × ratio × premium: positive is a debit
  (paid), negative a credit (received).
* Max loss is a positive amount (what can be lost). None, for max profit or max loss, is unlimited.
* When every leg expires together, the P&L at expiry is exactly piecewise linear with its kinks at
  the strikes (`expiry_payoff`); max profit, max loss and breakevens are read off those segments.
  A position with two expiries (a calendar) is valued at the front expiry with Black–Scholes for
  the legs still alive: a model, flagged `modelled`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from decimal import Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

from brokers.blackscholes import DAYS_PER_YEAR, Valuation, black_scholes
from brokers.occ import InvalidOptionSymbol, OptionContract, build_symbol, exercise_value, parse_symbol
from brokers.paper_spreads import is_covered
from tradeoptions.words import day_text

from .services.errors import InvalidTradeInput

LONG, SHORT = "LONG", "SHORT"
CALL, PUT = "CALL", "PUT"
SHARES = Decimal(100)  # one contract
CENT = Decimal("0.01")
ZERO = Decimal(0)
NEW_YORK = ZoneInfo("America/New_York")
YEAR_SECONDS = DAYS_PER_YEAR * 24 * 3600
# A breakeven that is not a finite decimal (a ratio of 3 divides by 3) is given to this step.
BREAKEVEN_STEP = Decimal("0.0001")


# --- legs and positions -------------------------------------------------------------------------

@dataclass(frozen=True)
class SpreadLeg:
    """One leg: `ratio` contracts per spread of `contract`, bought (LONG) or sold (SHORT).

    `premium` is the price per share the leg was (or would be) traded at, always positive; `iv`
    its current implied volatility (0.16 for 16 %), which only the model of today needs.
    """

    contract: OptionContract
    side: str
    ratio: int = 1
    premium: Decimal = ZERO
    iv: float | None = None

    @classmethod
    def of(cls, root: str, option_type: str, strike, expiry: date, side: str, *, ratio: int = 1,
           premium=ZERO, iv: float | None = None) -> SpreadLeg:
        """A leg from its parts (right, strike, expiry), as a chain lists them."""
        contract = OptionContract(root=root, expiry=expiry, option_type=option_type, strike=Decimal(str(strike)))
        return cls(contract, side, ratio, Decimal(str(premium)), iv)

    @classmethod
    def from_symbol(cls, symbol: str, side: str, *, ratio: int = 1, premium=ZERO,
                    iv: float | None = None) -> SpreadLeg:
        """A leg from an OCC option symbol (SPY261218C00505000)."""
        try:
            contract = parse_symbol(symbol)
        except InvalidOptionSymbol as exc:
            raise InvalidTradeInput({"legs": [str(exc)]}) from None
        return cls(contract, side, ratio, Decimal(str(premium)), iv)

    @property
    def option_type(self) -> str:
        return self.contract.option_type

    @property
    def strike(self) -> Decimal:
        return self.contract.strike

    @property
    def expiry(self) -> date:
        return self.contract.expiry

    @property
    def symbol(self) -> str:
        return self.contract.symbol

    @property
    def sign(self) -> int:
        """+1 for a long leg, −1 for a short one: how the leg's value counts in the position's."""
        return 1 if self.side == LONG else -1

    def pnl_at_expiry(self, underlying: Decimal, quantity: int = 1) -> Decimal:
        """This leg's P&L in dollars, held to expiry with the underlying at `underlying`."""
        value = exercise_value(self.option_type, self.strike, underlying)
        return self.sign * self.ratio * quantity * SHARES * (value - self.premium)

    def text(self) -> str:
        """short 2 SPY Dec 18, 2026 505 calls"""
        noun = self.option_type.lower() + ("s" if self.ratio > 1 else "")
        return f"{self.side.lower()} {self.ratio} {contract_text(self.contract)} {noun}"


def contract_text(contract: OptionContract) -> str:
    """SPY Dec 18, 2026 505 — the contract as a trader names it (add "call" or "put")."""
    return f"{contract.root} {day_text(contract.expiry)} {strike_text(contract.strike)}"


def strike_text(strike: Decimal) -> str:
    return f"{strike.normalize():f}"


@dataclass(frozen=True)
class SpreadPosition:
    """`quantity` spreads, each made of `legs`. A single long option is the one-leg case.

    Checked when made: a position that exists is one the math can answer for.
    """

    legs: tuple[SpreadLeg, ...]
    quantity: int = 1
    strategy: str = "custom"  # the template that built it: vertical, straddle, iron_condor, ...

    def __post_init__(self) -> None:
        object.__setattr__(self, "legs", tuple(self.legs))
        errors = _position_errors(self)
        if errors:
            raise InvalidTradeInput(errors)

    @property
    def expiries(self) -> tuple[date, ...]:
        return tuple(sorted({leg.expiry for leg in self.legs}))

    @property
    def root(self) -> str:
        return self.legs[0].contract.root


def _position_errors(position: SpreadPosition) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}

    def refuse(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not position.legs:
        refuse("legs", "A position needs at least one leg.")
        return errors
    if not isinstance(position.quantity, int) or isinstance(position.quantity, bool) or position.quantity < 1:
        refuse("quantity", "The quantity must be a whole number of spreads, at least 1.")
    if len({leg.contract.root for leg in position.legs}) > 1:
        refuse("legs", "All legs must be on one underlying.")
    seen: set[OptionContract] = set()
    for leg in position.legs:
        try:
            # A contract an OCC symbol can name: a ticker, a call or a put, a strike in 0.001 steps.
            build_symbol(leg.contract.root, leg.expiry, leg.option_type, leg.strike)
        except InvalidOptionSymbol as exc:
            refuse("legs", str(exc))
            continue
        name = f"{contract_text(leg.contract)} {leg.option_type.lower()}"
        if leg.side not in (LONG, SHORT):
            refuse("legs", f"The {name} must be bought or sold.")
        if not isinstance(leg.ratio, int) or isinstance(leg.ratio, bool) or leg.ratio < 1:
            refuse("legs", f"The {name} needs a whole number of contracts per spread, at least 1.")
        if not leg.premium.is_finite() or leg.premium < 0:
            refuse("legs", f"The {name} needs a price of 0 or more per share.")
        if leg.iv is not None and not leg.iv > 0:
            refuse("legs", f"The {name} has an implied volatility that is not above 0.")
        if leg.contract in seen:
            refuse("legs", f"The {name} is in the position twice; give one leg its number of contracts instead.")
        seen.add(leg.contract)
    return errors


def position_priced(position: SpreadPosition,
                    price_of: Callable[[SpreadLeg], tuple[Decimal, float | None]]) -> SpreadPosition:
    """The position with each leg's premium and IV from `price_of(leg)` (e.g. the natural side of
    its quote: the ask to buy, the bid to sell, and the quote's IV)."""
    legs = []
    for leg in position.legs:
        premium, iv = price_of(leg)
        legs.append(replace(leg, premium=Decimal(str(premium)), iv=iv))
    return replace(position, legs=tuple(legs))


# --- premium, width, defined risk ---------------------------------------------------------------

def net_premium(position: SpreadPosition) -> Decimal:
    """Per share, per spread: positive a net debit, negative a net credit."""
    return sum((leg.sign * leg.ratio * leg.premium for leg in position.legs), ZERO)


def net_cost(position: SpreadPosition) -> Decimal:
    """Dollars for the whole position: positive paid (debit), negative received (credit)."""
    return net_premium(position) * position.quantity * SHARES


def spread_width(position: SpreadPosition) -> Decimal:
    """The widest gap between neighbouring strikes of one right: a vertical's width, a condor's or
    butterfly's wider wing; 0 for a straddle, a strangle, a single option or a calendar."""
    width = ZERO
    for option_type in (CALL, PUT):
        strikes = sorted({leg.strike for leg in position.legs if leg.option_type == option_type})
        width = max([width, *(high - low for low, high in zip(strikes, strikes[1:], strict=False))])
    return width


def is_defined_risk(position: SpreadPosition) -> bool:
    """Every short contract is covered by a long one of the same right expiring no earlier: the
    paper broker's rule for what it will hold (`brokers.paper_spreads.is_covered`), so the trades
    layer and the broker never disagree on which spreads are naked."""
    return is_covered((leg.option_type, leg.expiry, leg.sign * leg.ratio) for leg in position.legs)


# --- payoff at expiry: exact, piecewise linear ----------------------------------------------------

@dataclass(frozen=True)
class PayoffSegment:
    """The P&L at expiry for underlying prices from `start` to `end` (None: no end): `value` at
    `start`, then `slope` dollars for every dollar the underlying rises."""

    start: Decimal
    end: Decimal | None
    value: Decimal
    slope: Decimal

    def at(self, underlying: Decimal) -> Decimal:
        return self.value + (underlying - self.start) * self.slope


def expiry_payoff(position: SpreadPosition) -> tuple[PayoffSegment, ...]:
    """The P&L at expiry of a position whose legs all expire together, as segments from an
    underlying of 0 up, with a kink at each strike. The value at each kink is the sum of the legs'
    P&L there; the slope of a segment counts the calls below it and the puts above it."""
    if len(position.expiries) != 1:
        raise ValueError("Legs expiring on different dates have no single payoff at expiry; use the model.")
    kinks = sorted({ZERO, *(leg.strike for leg in position.legs)})
    segments = []
    for start, end in zip(kinks, [*kinks[1:], None], strict=True):
        value = sum((leg.pnl_at_expiry(start, position.quantity) for leg in position.legs), ZERO)
        slope = ZERO
        for leg in position.legs:
            if leg.option_type == CALL and leg.strike <= start:
                slope += leg.sign * leg.ratio
            elif leg.option_type == PUT and end is not None and leg.strike >= end:
                slope -= leg.sign * leg.ratio
        segments.append(PayoffSegment(start, end, value, slope * position.quantity * SHARES))
    return tuple(segments)


def pnl_at_expiry(segments: Sequence[PayoffSegment], underlying: Decimal) -> Decimal:
    """The P&L at expiry at `underlying` (0 or more), read off the segments."""
    if underlying < 0:
        raise ValueError("An underlying price is never below 0.")
    for segment in segments:
        if segment.end is None or underlying < segment.end:
            return segment.at(underlying)
    raise AssertionError("the last segment has no end")


def expiry_breakevens(segments: Sequence[PayoffSegment]) -> tuple[Decimal, ...]:
    """The underlying prices where the P&L at expiry is 0, ascending: each segment's own zero.
    Exact when it is a finite decimal; otherwise to BREAKEVEN_STEP. Where the P&L is 0 along a
    whole stretch, its two ends are given."""
    found: list[Decimal] = []
    for segment in segments:
        end_value = None if segment.end is None else segment.at(segment.end)
        if segment.value == 0:
            found.append(segment.start)
        if segment.slope == 0:
            if segment.value == 0 and segment.end is not None:
                found.append(segment.end)
            continue
        zero = Fraction(segment.start) - Fraction(segment.value) / Fraction(segment.slope)
        if zero > Fraction(segment.start) and (end_value is None or zero < Fraction(segment.end)):
            found.append(_decimal(zero))
    return tuple(sorted(set(found)))


def _decimal(value: Fraction) -> Decimal:
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return exact if Fraction(exact) == value else exact.quantize(BREAKEVEN_STEP)


# --- the model of today: Black–Scholes with the legs' IVs ----------------------------------------

def close_in_new_york(expiry: date) -> datetime:
    """16:00 New York on the expiry date: the default cutoff. The caller should pass the exchange
    calendar's (`Market.expiry_cutoff`), which knows early closes and holiday expiries."""
    return datetime.combine(expiry, time(16), tzinfo=NEW_YORK)


# The risk-free rate of the model of today: the one the simulated market prices with.
MODEL_RATE = 0.04


@dataclass(frozen=True)
class OptionModel:
    """What Black–Scholes needs besides the legs' IVs: now (`as_of`, aware), the risk-free rate,
    and when each expiry stops trading."""

    as_of: datetime
    rate: float = 0.0
    cutoff: Callable[[date], datetime] = close_in_new_york


def leg_valuation(leg: SpreadLeg, spot: Decimal, model: OptionModel, at: datetime | None = None) -> Valuation:
    """Black–Scholes value and greeks per share of the leg's contract at `at` (default: now), the
    underlying at `spot`; an expired leg is worth its exercise value."""
    years = (model.cutoff(leg.expiry) - (at or model.as_of)).total_seconds() / YEAR_SECONDS
    if years > 0 and leg.iv is None:
        raise InvalidTradeInput({"legs": [
            f"The {contract_text(leg.contract)} {leg.option_type.lower()} has no implied volatility yet; "
            "the payoff today needs one."]})
    if years > 0 and spot <= 0:
        raise ValueError("The model needs an underlying price above 0 while a leg still trades.")
    return black_scholes(spot=float(spot), strike=float(leg.strike), years=years, vol=leg.iv or 0.0,
                         rate=model.rate, is_call=leg.option_type == CALL)


def model_pnl(position: SpreadPosition, spot: Decimal, model: OptionModel, at: datetime | None = None) -> Decimal:
    """The position's P&L in dollars at `at` (default: now) with the underlying at `spot`: legs
    still trading at their Black–Scholes value, expired ones at their exercise value. A model,
    rounded to the cent."""
    at = at or model.as_of
    total = ZERO
    for leg in position.legs:
        if model.cutoff(leg.expiry) <= at:
            value = exercise_value(leg.option_type, leg.strike, spot)
        else:
            value = Decimal(repr(leg_valuation(leg, spot, model, at).price))
        total += leg.sign * leg.ratio * position.quantity * SHARES * (value - leg.premium)
    return total.quantize(CENT)


@dataclass(frozen=True)
class NetGreeks:
    """The position's greeks in dollars: delta in shares of the underlying (the dollars gained per
    $1 up), gamma in shares per $1, theta in dollars per calendar day, vega in dollars per
    volatility point. Model values, in floats."""

    delta: float
    gamma: float
    theta: float
    vega: float


def net_greeks(position: SpreadPosition, spot: Decimal, model: OptionModel) -> NetGreeks:
    """Σ side × ratio × quantity × 100 × the leg's greek, each leg valued now at `spot`."""
    totals = dict.fromkeys(("delta", "gamma", "theta", "vega"), 0.0)
    for leg in position.legs:
        valuation = leg_valuation(leg, spot, model)
        weight = leg.sign * leg.ratio * position.quantity * float(SHARES)
        for name in totals:
            totals[name] += weight * getattr(valuation, name)
    return NetGreeks(**totals)


@dataclass(frozen=True)
class PayoffPoint:
    """One point of the builder's chart: the P&L at expiry (at the front expiry, modelled, for a
    calendar; None without a model) and today (None without a model)."""

    underlying: Decimal
    at_expiry: Decimal | None
    today: Decimal | None


def price_grid(position: SpreadPosition, spot: Decimal, *, points: int = 121,
               reach: Decimal = Decimal("0.2")) -> tuple[Decimal, ...]:
    """Underlying prices for the chart, to the cent: from `reach` below the lowest of spot and the
    strikes to `reach` above the highest, evenly, with every strike and spot on it."""
    low = min([spot, *(leg.strike for leg in position.legs)]) * (1 - reach)
    high = max([spot, *(leg.strike for leg in position.legs)]) * (1 + reach)
    step = (high - low) / (points - 1)
    even = {(low + step * index).quantize(CENT) for index in range(points)}
    return tuple(sorted(even | {spot} | {leg.strike for leg in position.legs}))


def payoff_curve(position: SpreadPosition, prices: Iterable[Decimal],
                 model: OptionModel | None = None) -> tuple[PayoffPoint, ...]:
    """The chart's two lines over `prices`: at expiry (exact for one expiry) and today (model)."""
    single = len(position.expiries) == 1
    segments = expiry_payoff(position) if single else ()
    front = model.cutoff(position.expiries[0]) if model else None
    points = []
    for price in prices:
        if single:
            at_expiry = pnl_at_expiry(segments, price)
        else:
            at_expiry = model_pnl(position, price, model, front) if model else None
        today = model_pnl(position, price, model) if model else None
        points.append(PayoffPoint(price, at_expiry, today))
    return tuple(points)


# --- what a position can make and lose, and what it reserves -------------------------------------

NOT_DEFINED_RISK = ("Not defined-risk: a short leg is not covered by a long one of the same kind expiring no "
                    "earlier. The broker holds naked-option margin for it, and only an account that allows "
                    "naked short options may open it.")
DEFINED_RISK = ("The most it can lose at expiry, and at least the debit: width × 100 − credit for a credit "
                "spread (a condor's wider wing), the debit for a debit spread.")
LONG_ONLY = "The debit paid: a position of bought options can lose no more."


@dataclass(frozen=True)
class SpreadRisk:
    """A position's numbers (issue 19's "computed per position"), all in dollars for the whole
    position except `net_premium` (per share, per spread) and `width` (in strike dollars)."""

    strategy: str
    net_premium: Decimal  # + debit, − credit
    cost: Decimal  # + paid, − received
    width: Decimal
    max_profit: Decimal | None  # None: unlimited
    max_loss: Decimal | None  # a positive amount; None: unlimited
    breakevens: tuple[Decimal, ...]
    defined_risk: bool
    buying_power: Decimal | None  # what opening reserves; None: not defined-risk (the caller refuses)
    buying_power_rule: str  # the rule, in trader words
    modelled: bool  # max profit, max loss and breakevens come from the model at the front expiry

    @property
    def debit(self) -> Decimal:
        return max(self.cost, ZERO)

    @property
    def credit(self) -> Decimal:
        return max(-self.cost, ZERO)


def spread_risk(position: SpreadPosition, model: OptionModel | None = None) -> SpreadRisk:
    """Max profit, max loss, breakevens, width, cost and buying power of `position`.

    One expiry: exact, from the segments of the payoff at expiry (the extremes are at kinks, or
    unlimited where the last segment still slopes). Two expiries (a calendar): at the front expiry
    with the back legs valued by `model` (required), searched on a fine grid: max profit and
    breakevens to the cent of that search; max loss is at least the debit.
    """
    cost = net_cost(position)
    if len(position.expiries) == 1:
        segments = expiry_payoff(position)
        values = [segment.value for segment in segments]
        last = segments[-1].slope
        max_profit = None if last > 0 else max(values)
        max_loss = None if last < 0 else -min(values)
        breakevens = expiry_breakevens(segments)
        modelled = False
    else:
        if model is None:
            raise ValueError("A position with legs expiring on different dates needs an OptionModel.")
        max_profit, max_loss, breakevens = _modelled_extremes(position, model)
        max_loss = max(max_loss, cost)
        modelled = True
    defined = is_defined_risk(position)
    if not defined:
        buying_power, rule = None, NOT_DEFINED_RISK
    elif all(leg.side == LONG for leg in position.legs):
        buying_power, rule = max(cost, ZERO), LONG_ONLY
    else:
        buying_power, rule = max(max_loss, cost, ZERO), DEFINED_RISK  # 0 for prices that cannot lose
    return SpreadRisk(strategy=position.strategy, net_premium=net_premium(position), cost=cost,
                      width=spread_width(position), max_profit=max_profit, max_loss=max_loss,
                      breakevens=breakevens, defined_risk=defined, buying_power=buying_power,
                      buying_power_rule=rule, modelled=modelled)


def _modelled_extremes(position: SpreadPosition,
                       model: OptionModel) -> tuple[Decimal, Decimal, tuple[Decimal, ...]]:
    """Max profit, max loss and breakevens at the front expiry by the model: a grid from half the
    lowest strike to one and a half the highest, refined to the cent around the best point and
    around each change of sign."""
    front = model.cutoff(position.expiries[0])

    def pnl(price: Decimal) -> Decimal:
        return model_pnl(position, price, model, front)

    strikes = [leg.strike for leg in position.legs]
    low, high = min(strikes) / 2, max(strikes) * Decimal("1.5")
    step = ((high - low) / 400).quantize(CENT) or CENT
    grid = sorted({*(low + step * index for index in range(401)), *strikes})
    grid = [price.quantize(CENT) for price in grid]
    values = [pnl(price) for price in grid]
    best = max(range(len(grid)), key=values.__getitem__)
    max_profit = _refined_max(pnl, grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)])
    breakevens = []
    for (left, left_value), (right, right_value) in zip(zip(grid, values, strict=True),
                                                        zip(grid[1:], values[1:], strict=True), strict=False):
        if left_value == 0:
            breakevens.append(left)
        elif (left_value < 0) != (right_value < 0) and right_value != 0:
            breakevens.append(_bisect(pnl, left, right, left_value < 0))
    return max_profit, -min(values), tuple(breakevens)


def _refined_max(pnl: Callable[[Decimal], Decimal], low: Decimal, high: Decimal) -> Decimal:
    """The highest modelled P&L between `low` and `high`, narrowing a 20-step grid around its best
    point until the steps are cents."""
    while True:
        step = max(((high - low) / 20).quantize(CENT), CENT)
        prices = [min(low + step * index, high) for index in range(21)]
        values = [pnl(price) for price in prices]
        best = max(range(len(prices)), key=values.__getitem__)
        if step == CENT:
            return values[best]
        low, high = prices[max(best - 1, 0)], prices[min(best + 1, len(prices) - 1)]


def _bisect(pnl: Callable[[Decimal], Decimal], left: Decimal, right: Decimal, rising: bool) -> Decimal:
    """The cent where the modelled P&L crosses 0 between `left` and `right`."""
    while right - left > CENT:
        middle = ((left + right) / 2).quantize(CENT)
        if (pnl(middle) < 0) == rising:
            left = middle
        else:
            right = middle
    return right


# --- templates: legs from the chain's strikes ----------------------------------------------------

def _listed(strikes: dict[str, Decimal], chain_strikes: Collection[Decimal] | None, root: str,
            expiries: Sequence[date]) -> None:
    """Every chosen strike is one the chain lists."""
    if chain_strikes is None:
        return
    listed = {Decimal(str(strike)) for strike in chain_strikes}
    days = " and ".join(day_text(day) for day in expiries)
    errors = {field: [f"There is no {strike_text(strike)} strike on the {root} chain for {days}."]
              for field, strike in strikes.items() if strike not in listed}
    if errors:
        raise InvalidTradeInput(errors)


def _strikes(**strikes) -> dict[str, Decimal]:
    return {field: Decimal(str(strike)) for field, strike in strikes.items()}


def vertical(*, root: str, expiry: date, option_type: str, lower, upper, credit: bool = False,
             quantity: int = 1, chain_strikes: Collection[Decimal] | None = None) -> SpreadPosition:
    """One bought and one sold option of one right and expiry. A debit spread buys the strike
    nearer the money (the lower call, the upper put); a credit spread sells it."""
    strikes = _strikes(lower=lower, upper=upper)
    if strikes["lower"] >= strikes["upper"]:
        raise InvalidTradeInput({"upper": [
            f"The upper strike ({strike_text(strikes['upper'])}) must be above the lower strike "
            f"({strike_text(strikes['lower'])})."]})
    _listed(strikes, chain_strikes, root, [expiry])
    near, far = ("lower", "upper") if option_type == CALL else ("upper", "lower")
    bought, sold = (far, near) if credit else (near, far)
    legs = (SpreadLeg.of(root, option_type, strikes[bought], expiry, LONG),
            SpreadLeg.of(root, option_type, strikes[sold], expiry, SHORT))
    return SpreadPosition(legs, quantity, "vertical")


def straddle(*, root: str, expiry: date, strike, short: bool = False, quantity: int = 1,
             chain_strikes: Collection[Decimal] | None = None) -> SpreadPosition:
    """A call and a put at one strike, both bought (or both sold: short premium, not defined-risk)."""
    strikes = _strikes(strike=strike)
    _listed(strikes, chain_strikes, root, [expiry])
    side = SHORT if short else LONG
    legs = (SpreadLeg.of(root, CALL, strikes["strike"], expiry, side),
            SpreadLeg.of(root, PUT, strikes["strike"], expiry, side))
    return SpreadPosition(legs, quantity, "straddle")


def strangle(*, root: str, expiry: date, put_strike, call_strike, short: bool = False, quantity: int = 1,
             chain_strikes: Collection[Decimal] | None = None) -> SpreadPosition:
    """A put below and a call above, both bought (or both sold)."""
    strikes = _strikes(put_strike=put_strike, call_strike=call_strike)
    if strikes["put_strike"] >= strikes["call_strike"]:
        raise InvalidTradeInput({"call_strike": [
            f"A strangle's call strike ({strike_text(strikes['call_strike'])}) must be above its put strike "
            f"({strike_text(strikes['put_strike'])}); at one strike it is a straddle."]})
    _listed(strikes, chain_strikes, root, [expiry])
    side = SHORT if short else LONG
    legs = (SpreadLeg.of(root, PUT, strikes["put_strike"], expiry, side),
            SpreadLeg.of(root, CALL, strikes["call_strike"], expiry, side))
    return SpreadPosition(legs, quantity, "strangle")


def iron_condor(*, root: str, expiry: date, long_put, short_put, short_call, long_call, quantity: int = 1,
                chain_strikes: Collection[Decimal] | None = None) -> SpreadPosition:
    """A put credit spread below and a call credit spread above: four strikes, ascending."""
    strikes = _strikes(long_put=long_put, short_put=short_put, short_call=short_call, long_call=long_call)
    text = {field: strike_text(strike) for field, strike in strikes.items()}
    errors = {}
    if strikes["long_put"] >= strikes["short_put"]:
        errors["long_put"] = [f"The put wing is out of order: the bought put ({text['long_put']}) must be below "
                              f"the sold put ({text['short_put']})."]
    if strikes["long_call"] <= strikes["short_call"]:
        errors["long_call"] = [f"The call wing is out of order: the bought call ({text['long_call']}) must be "
                               f"above the sold call ({text['short_call']})."]
    if strikes["short_put"] >= strikes["short_call"]:
        errors["short_call"] = [f"The sold call ({text['short_call']}) must be above the sold put "
                                f"({text['short_put']}); at one strike it is an iron butterfly."]
    if errors:
        raise InvalidTradeInput(errors)
    _listed(strikes, chain_strikes, root, [expiry])
    legs = (SpreadLeg.of(root, PUT, strikes["long_put"], expiry, LONG),
            SpreadLeg.of(root, PUT, strikes["short_put"], expiry, SHORT),
            SpreadLeg.of(root, CALL, strikes["short_call"], expiry, SHORT),
            SpreadLeg.of(root, CALL, strikes["long_call"], expiry, LONG))
    return SpreadPosition(legs, quantity, "iron_condor")


def butterfly(*, root: str, expiry: date, option_type: str, lower, middle, upper, quantity: int = 1,
              chain_strikes: Collection[Decimal] | None = None) -> SpreadPosition:
    """Buy the lower and upper wings, sell two at the middle (wings may differ: a broken wing)."""
    strikes = _strikes(lower=lower, middle=middle, upper=upper)
    if not strikes["lower"] < strikes["middle"] < strikes["upper"]:
        raise InvalidTradeInput({"middle": [
            f"A butterfly's strikes must rise from the lower wing ({strike_text(strikes['lower'])}) through the "
            f"body ({strike_text(strikes['middle'])}) to the upper wing ({strike_text(strikes['upper'])})."]})
    _listed(strikes, chain_strikes, root, [expiry])
    legs = (SpreadLeg.of(root, option_type, strikes["lower"], expiry, LONG),
            SpreadLeg.of(root, option_type, strikes["middle"], expiry, SHORT, ratio=2),
            SpreadLeg.of(root, option_type, strikes["upper"], expiry, LONG))
    return SpreadPosition(legs, quantity, "butterfly")


def calendar(*, root: str, option_type: str, strike, front_expiry: date, back_expiry: date, quantity: int = 1,
             chain_strikes: Collection[Decimal] | None = None) -> SpreadPosition:
    """Sell the front month, buy the back month, one strike. `chain_strikes`: those both list."""
    if front_expiry >= back_expiry:
        raise InvalidTradeInput({"back_expiry": [
            f"The month bought ({day_text(back_expiry)}) must expire after the month sold "
            f"({day_text(front_expiry)})."]})
    strikes = _strikes(strike=strike)
    _listed(strikes, chain_strikes, root, [front_expiry, back_expiry])
    legs = (SpreadLeg.of(root, option_type, strikes["strike"], front_expiry, SHORT),
            SpreadLeg.of(root, option_type, strikes["strike"], back_expiry, LONG))
    return SpreadPosition(legs, quantity, "calendar")


TEMPLATES = {"vertical": vertical, "straddle": straddle, "strangle": strangle, "iron_condor": iron_condor,
             "butterfly": butterfly, "calendar": calendar}

__all__ = [
    "BREAKEVEN_STEP", "CALL", "DEFINED_RISK", "LONG", "LONG_ONLY", "NOT_DEFINED_RISK", "PUT", "SHORT", "TEMPLATES",
    "NetGreeks", "OptionModel", "PayoffPoint", "PayoffSegment",
    "SpreadLeg", "SpreadPosition", "SpreadRisk", "butterfly", "calendar", "close_in_new_york", "contract_text",
    "expiry_breakevens", "expiry_payoff", "iron_condor", "is_defined_risk", "leg_valuation", "model_pnl",
    "net_cost", "net_greeks", "net_premium", "payoff_curve", "pnl_at_expiry", "position_priced", "price_grid",
    "spread_risk", "spread_width", "straddle", "strangle", "strike_text", "vertical",
]
